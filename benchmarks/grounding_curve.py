# Copyright (c) mmrefseg contributors.
"""Does the model ground language? Train for a time budget on CPU/GPU and
evaluate val cIoU with the real expressions and with every expression swapped
for another object's of the same image (the control).

    python benchmarks/grounding_curve.py \
        configs/mllmseg/mllmseg_hybrid_tiny_synth.py \
        --minutes 5 10 15 20 25 30 --val-samples 600

Prints a table of cIoU (real, shuffled, gap) against training minutes
(evaluation time excluded). The README quick start runs a short version.

One process uses one CPU core in practice (the tiny models' ops are too
small for intra-op threads: 1.12 s/iteration on one thread against 1.15 on
two). To train on every core, run one process per core with data
parallelism; the batch size is per process:

    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 \
        benchmarks/grounding_curve.py CONFIG --launcher pytorch --iters ...
"""
import os

# Idle OpenMP threads sleep instead of spinning, so other busy processes
# slow this one down in proportion instead of several-fold (set before
# torch loads; docs/experiments.md, "CPU threads").
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse
import os.path as osp
import sys
import time

from mmengine.config import Config, DictAction
from mmengine.dist import barrier, is_main_process

from mmrefseg.apis import build_runner, finish_distributed
from mmrefseg.utils import register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--minutes', type=float, nargs='+',
                        default=[5, 10, 15, 20, 25, 30],
                        help='training-time marks at which to evaluate')
    parser.add_argument('--iters', type=int, nargs='+', default=None,
                        help='evaluate at these iterations instead of '
                        'minutes (timing-independent)')
    parser.add_argument('--val-samples', type=int, default=600,
                        help='first N val expressions (0 = all)')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--data-root', default=None,
                        help='synthetic data root (generated if missing)')
    parser.add_argument('--keep-schedule', action='store_true',
                        help="keep the config's param_scheduler (e.g. a "
                        'cosine fitted to the budget); by default the LR is '
                        'held constant after warm-up so that every mark '
                        'sees the same schedule')
    add_launcher_argument(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def add_launcher_argument(parser: argparse.ArgumentParser) -> None:
    """``--launcher``: 'pytorch' runs one data-parallel process per core
    (or GPU) under torchrun; the benchmarks that train share it."""
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none',
                        help='pytorch: one data-parallel process per core '
                        '(or GPU) under torchrun')


def ensure_synthetic(data_root: str) -> None:
    """Generate the default synthetic dataset if it is not there."""
    if osp.isfile(osp.join(data_root, 'synthrefcoco', 'instances.json')):
        return
    from mmrefseg.datasets.synthetic import generate_synthetic_refer
    print(f'Generating the synthetic REFER dataset under {data_root} ...')
    t = time.time()
    generate_synthetic_refer(data_root, 2000, 200, 200, seed=0)
    print(f'  done in {time.time() - t:.0f} s')


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.data_root:
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.data_root = args.data_root
    cfg.work_dir = args.work_dir or osp.join(
        'work_dirs', 'grounding_' + osp.splitext(osp.basename(
            args.config))[0])
    val = cfg.val_dataloader
    real = val.dataset.copy()
    if args.val_samples:
        real['indices'] = args.val_samples
    # Scoped names resolve under any default scope, so configs of plain MMSeg
    # models (default_scope='mmseg', e.g. projects/mmseg_text_decoder) work.
    control = dict(type='mmrefseg.ShuffledExpressionsDataset',
                   dataset=real.copy(), seed=0)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='mmrefseg.TimeBudgetEvalHook',
             minutes=args.iters or args.minutes,
             unit='iters' if args.iters else 'minutes',
             dataloaders=dict(
                 real=dict(val, dataset=real),
                 shuffled=dict(val, dataset=control)),
             evaluator=cfg.val_evaluator)
    ]
    # The hook decides when to stop and evaluates itself: no regular
    # validation (the train loop would also run one over the whole val
    # split when the hook ends training).
    cfg.train_cfg.max_iters = 10**7
    cfg.train_cfg.pop('val_interval', None)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if not args.keep_schedule:
        cfg.param_scheduler = [
            s for s in cfg.param_scheduler if s.get('type') == 'LinearLR'
        ] + [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                  begin=10**6)]
    return cfg


def train_and_evaluate(cfg: Config):
    """Train under the evaluation hook; return the runner and its rows."""
    # build_runner sets up gloo data parallelism on machines without CUDA;
    # the datasets are built later, in train().
    runner = build_runner(cfg)
    if is_main_process():
        ensure_synthetic(cfg.train_dataloader.dataset.data_root)
    barrier()
    runner.train()
    hook = [h for h in runner.hooks if type(h).__name__ ==
            'TimeBudgetEvalHook'][0]
    return runner, hook.rows


def format_table(rows) -> str:
    """Markdown table of cIoU (real, shuffled, gap) at each mark."""
    lines = ['| train min | iters | cIoU real | cIoU shuffled | gap |',
             '|---|---|---|---|---|']
    for row in rows:
        r = row['real']['refseg/cIoU']
        s = row['shuffled']['refseg/cIoU']
        lines.append(f'| {row["minutes"]:.1f} | {row["iters"]} | {r:.1f} | '
                     f'{s:.1f} | {r - s:.1f} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    start = time.time()
    _, rows = train_and_evaluate(cfg)
    if is_main_process():
        print('\n' + format_table(rows))
        print(f'\nwall time {(time.time() - start) / 60:.1f} min, '
              f'config {args.config}')
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(main())
