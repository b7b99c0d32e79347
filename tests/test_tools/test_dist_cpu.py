# Copyright (c) mmrefseg contributors.
"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (gloo).

Data parallelism must not change the maths: 2 processes at per-process
batch B average their gradients, which is the gradient of 1 process at
batch 2B when every loss term is a mean over equally weighted samples and
the samples do not depend on the process. SELF1E's tiny model (no
BatchNorm, whose per-process statistics would differ), one expression per
sample and fixed prompt templates (random ones come from each process's
RNG) fulfil that. The LM loss does not: it is a mean over the answer
tokens of a process's batch (as in HF models), so answers of different
lengths weigh differently split over 2 processes; the weight comparison
runs with lm_loss_weight=0 (with it, weights differ by ~2e-4 after three
steps, against ~1e-7 without). SGD keeps a float
rounding difference in the gradient a rounding difference in the weights;
Adam would divide near-zero gradient coordinates by their own magnitude and
turn rounding noise into steps of size lr.
"""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from tiny_run_config import REPO, write_tiny_config

TINY = 'configs/self1e/self1e_tiny_synth.py'
ITERS = 3
# Gradients of the same samples summed in another order (gloo all-reduce
# then /2 against one batched mean) differ by float32 rounding; after three
# SGD steps at lr 0.05 the weights differ by ~1e-7 (measured), while the
# steps themselves move them by ~1e-2 and a different sample in a batch by
# ~1e-3.
ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHON'] = sys.executable
    env['PORT'] = str(_free_port())
    env['OMP_NUM_THREADS'] = '1'
    env.pop('LOCAL_RANK', None)
    return env


def _run(cmd, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope='module')
def dist_runs(tmp_path_factory):
    """Train 2 x batch 2 and 1 x batch 4 from the same seed; dump config."""
    from mmrefseg.datasets.synthetic import generate_synthetic_refer
    tmp = tmp_path_factory.mktemp('dist')
    data = tmp / 'data'
    generate_synthetic_refer(str(data), num_train_images=8, num_val_images=5,
                             num_test_images=2, seed=0)
    cfg = write_tiny_config(TINY, str(tmp / 'tiny.py'), str(data),
                            max_iters=ITERS,
                            optimizer=dict(type='SGD', lr=0.05),
                            deterministic_data=True)
    two = tmp / 'two'
    one = tmp / 'one'
    _run(['bash', osp.join(REPO, 'tools/dist_train.sh'), cfg, '2',
          '--work-dir', str(two), '--cfg-options',
          'train_dataloader.batch_size=2', 'model.lm_loss_weight=0'], tmp)
    # Checkpoints after every step, to see how far weights move.
    _run([sys.executable, osp.join(REPO, 'tools/train.py'), cfg,
          '--work-dir', str(one), '--cfg-options',
          'train_dataloader.batch_size=4', 'model.lm_loss_weight=0',
          'default_hooks.checkpoint.interval=1'], tmp)
    return tmp, cfg


def _weights(path: str) -> dict:
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return ckpt['state_dict']


def test_two_processes_equal_one_with_double_batch(dist_runs):
    tmp, _ = dist_runs
    a = _weights(str(tmp / 'two' / f'iter_{ITERS}.pth'))
    b = _weights(str(tmp / 'one' / f'iter_{ITERS}.pth'))
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item()
                for k in a)
    assert worst < ATOL, worst
    # The comparison means something: two steps move weights by far more.
    first = _weights(str(tmp / 'one' / 'iter_1.pth'))
    moved = max((b[k].float() - first[k].float()).abs().max().item()
                for k in b)
    assert moved > 100 * ATOL, moved


def _metric_table(work_dir) -> str:
    logs = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    assert len(logs) == 1, logs
    text = open(logs[0]).read()
    start = text.index('RES:')
    lines = text[start:].splitlines()
    return '\n'.join(lines[:6])


def _metrics_json(work_dir) -> dict:
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        row = json.loads(f.read().splitlines()[-1])
    return {k: v for k, v in row.items()
            if k not in ('time', 'data_time', 'step')}


def test_two_process_test_equals_one_process(dist_runs):
    tmp, cfg = dist_runs
    ckpt = str(tmp / 'two' / f'iter_{ITERS}.pth')
    # 5 val images: an odd count, so the sampler pads one rank.
    _run(['bash', osp.join(REPO, 'tools/dist_test.sh'), cfg, ckpt, '2',
          '--work-dir', str(tmp / 'test2'), '--cfg-options',
          'test_dataloader.batch_size=2'], tmp)
    _run([sys.executable, osp.join(REPO, 'tools/test.py'), cfg, ckpt,
          '--work-dir', str(tmp / 'test1'), '--cfg-options',
          'test_dataloader.batch_size=2'], tmp)
    table2 = _metric_table(tmp / 'test2')
    table1 = _metric_table(tmp / 'test1')
    assert table2 == table1, (table2, table1)
    m2, m1 = _metrics_json(tmp / 'test2'), _metrics_json(tmp / 'test1')
    assert m2 == m1
    assert any('num_expressions' in k for k in m1)


def _expression_counts(stdout: str) -> list:
    """The #expr column of every metric table a run printed."""
    lines = stdout.splitlines()
    return [int(lines[i + 2].split('|')[1]) for i, line in enumerate(lines)
            if line.startswith('| #expr |')]


def test_grounding_curve_on_two_processes(dist_runs):
    """benchmarks/grounding_curve.py --launcher pytorch (one process per
    core): the ranks agree on the minute marks (rank 0's clock), every mark
    evaluates the whole val slice gathered from both ranks, and the tables
    are printed once."""
    tmp, cfg = dist_runs
    script = osp.join(REPO, 'benchmarks/grounding_curve.py')
    # 5 val expressions: one rank's sampler pads a duplicate, which the
    # evaluator must drop.
    common = ['--minutes', '0.0001', '0.0002', '--val-samples', '5']
    two = _run([sys.executable, '-m', 'torch.distributed.run',
                '--nproc_per_node', '2', '--master_port',
                str(_free_port()), script, cfg, '--launcher', 'pytorch',
                '--work-dir', str(tmp / 'curve2'), *common], tmp)
    one = _run([sys.executable, script, cfg, '--work-dir',
                str(tmp / 'curve1'), *common], tmp)
    for proc in (two, one):
        # Two marks x (real, shuffled), each over the 5 expressions.
        assert _expression_counts(proc.stdout) == [5] * 4, proc.stdout
        assert proc.stdout.count('| train min | iters |') == 1
        table = proc.stdout.split('| train min | iters |')[1]
        assert len([ln for ln in table.splitlines()
                    if ln.startswith('| 0.')]) == 2
