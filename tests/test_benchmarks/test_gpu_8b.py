# Copyright (c) mmrefseg contributors.
"""benchmarks/gpu_8b.py --dry-run: every variant builds and runs on CPU."""
from repo_scripts import load_script


def _load():
    return load_script('benchmarks/gpu_8b.py')


def test_dry_run_builds_every_variant(capsys):
    bench = _load()
    # Batch 1 only, to keep CI short; the GPU run adds 2 and 4.
    rows = bench.main(['--dry-run', '--batches', '1'])
    out = capsys.readouterr().out
    builds = {(r['method'], r['weights']): r for r in rows
              if r['kind'] == 'build@meta'}
    # The real 8B shapes on the meta device: InternVL2.5-8B (+ MLLMSeg
    # heads) and InternVL3-8B, LoRA r64 and r128; bf16, 4-bit and 8-bit
    # LLM weights.
    assert set(builds) == {(m, w) for m in ('mllmseg', 'self1e')
                           for w in ('bf16', 'nf4', 'int8')}
    mllmseg, self1e = builds['mllmseg', 'bf16'], builds['self1e', 'bf16']
    assert 7.5 < mllmseg['params_B'] < 8.5
    assert 7.5 < self1e['params_B'] < 8.8
    assert mllmseg['lora_r'] == 64
    assert self1e['lora_r'] == 128
    assert self1e['lora_M'] > mllmseg['lora_M'] > 0
    for method in ('mllmseg', 'self1e'):
        gb = {w: builds[method, w]['weights_GB']
              for w in ('bf16', 'nf4', 'int8')}
        # 4-bit < 8-bit < bf16 weights, computed without quantizing.
        assert gb['nf4'] < gb['int8'] < gb['bf16'], gb
        assert 'not applied' in builds[method, 'nf4']['note']
    train = sorted((r['method'], r['weights'], r['grad_ckpt'])
                   for r in rows if r['kind'] == 'train')
    assert train == sorted(
        [(m, 'bf16', gc) for m in ('mllmseg', 'self1e')
         for gc in (True, False)] +
        [(m, w, True) for m in ('mllmseg', 'self1e')
         for w in ('nf4', 'int8')])
    assert all(r['step_s'] > 0 for r in rows if r['kind'] == 'train')
    assert all(r['expr_per_s'] > 0 for r in rows if r['kind'] == 'eval')
    # The tiny CPU models of the quantized variants are quantized: they
    # hold less than the bf16 one.
    held = {(r['method'], r['weights']): r['model_GiB'] for r in rows
            if r['kind'] == 'eval'}
    for method in ('mllmseg', 'self1e'):
        assert held[method, 'nf4'] < held[method, 'int8'] < held[
            method, 'bf16']
    assert out.count('| train      |') == 8 and bench.HEADER in out
    assert out.count('quantization checked, not applied') == 4
