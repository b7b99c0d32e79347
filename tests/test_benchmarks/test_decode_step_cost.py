# Copyright (c) mmrefseg contributors.
"""benchmarks/decode_step_cost.py: the linear table measures the row counts
it names (the model part builds the 8B proxy: benchmark only)."""
from repo_scripts import load_script


def _load():
    return load_script('benchmarks/decode_step_cost.py')


def test_linear_table_rows(capsys):
    bench = _load()
    out = bench.main(['--skip-model', '--expressions', '2', '--repeats', '1'])
    assert out['generation'] == []
    rows = out['linear']
    assert [r['rows'] for r in rows] == [1, 2, 40]
    for r in rows:
        assert r['ms'] > 0
        # GFLOP/s is 2 * weight * rows over the time; GB/s the weight's.
        assert abs(r['gflops'] / r['gbs'] - r['rows'] / 2) < 1e-6
    assert '| 40 |' in capsys.readouterr().out
