# Copyright (c) mmrefseg contributors.
"""benchmarks/gpu_8b.py --dry-run: every variant builds and runs on CPU."""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load():
    spec = importlib.util.spec_from_file_location(
        'mmrefseg_bench_gpu_8b', osp.join(REPO, 'benchmarks', 'gpu_8b.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_builds_every_variant(capsys):
    bench = _load()
    # Batch 1 only, to keep CI short; the GPU run adds 2 and 4.
    rows = bench.main(['--dry-run', '--batches', '1'])
    out = capsys.readouterr().out
    builds = {r['method']: r for r in rows if r['kind'] == 'build@meta'}
    # The real 8B shapes on the meta device: InternVL2.5-8B (+ MLLMSeg
    # heads) and InternVL3-8B, LoRA r64 and r128.
    assert set(builds) == {'mllmseg', 'self1e'}
    assert 7.5 < builds['mllmseg']['params_B'] < 8.5
    assert 7.5 < builds['self1e']['params_B'] < 8.8
    assert builds['mllmseg']['lora_r'] == 64
    assert builds['self1e']['lora_r'] == 128
    assert builds['self1e']['lora_M'] > builds['mllmseg']['lora_M'] > 0
    train = [(r['method'], r['grad_ckpt']) for r in rows
             if r['kind'] == 'train']
    assert sorted(train) == sorted(
        (m, gc) for m in ('mllmseg', 'self1e') for gc in (True, False))
    assert all(r['step_s'] > 0 for r in rows if r['kind'] == 'train')
    assert all(r['expr_per_s'] > 0 for r in rows if r['kind'] == 'eval')
    assert out.count('| train      |') == 4 and bench.HEADER in out
