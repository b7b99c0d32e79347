# Copyright (c) mmrefseg contributors.
"""Text4Seg fine-tuned from a grounding-pretrained tiny InternVL (two stages).

Stage 1 trains an existing tiny recipe that grounds (the MLLMSeg hybrid by
default) for ``--stage1-iters`` iterations (500 by default) and exports it
with the RefSegmentor export tool; the folder is cached and reused until
deleted. Stage 2 runs the grounding curve of
``configs/text4seg/text4seg_tiny_synth_ft.py`` from that folder for each
answer form (R-RLE and full descriptors), and prints
real / shuffled-expression cIoU, the grid's oracle cIoU (GT -> grid ->
nearest upsample, the best any answer can score) on the same val
expressions, and the parse-failure rate by repair kind:

    python benchmarks/text4seg_two_stage.py --iters 1950 3900

Everything is in iterations (timing-independent); training minutes are
printed next to them. See docs/text4seg_two_stage.md.

One process keeps one CPU core busy (the tiny models' ops are too small for
intra-op threads); to train both stages on every core, run one
data-parallel process per core (the batch size is per process):

    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 \
        benchmarks/text4seg_two_stage.py --launcher pytorch --fp32 \
        --stage1-cfg-options train_dataloader.batch_size=16 ...

(two processes at 16 keep the stage-1 recipe's global batch of 32).
"""
import os

# Idle OpenMP threads sleep instead of spinning, so other busy processes
# slow this one down in proportion instead of several-fold (set before
# torch loads; docs/experiments.md, "CPU threads").
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse
import copy
import json
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dist import barrier, get_world_size, is_main_process
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import grounding_curve  # noqa: E402
from grounding_by_kind import grid_oracle_mask  # noqa: E402

from mmrefseg.apis import (  # noqa: E402
    build_runner,
    finish_distributed,
    prepare_cpu_distributed,
)
from mmrefseg.converters import export_refsegmentor  # noqa: E402
from mmrefseg.converters.exported_model import INFO_FILE, replace_values  # noqa: E402
from mmrefseg.utils import register_all_modules  # noqa: E402

FULL_TOKENS_PER_CELL = 3  # 16x16 full answers: 528 tokens mean, 611 max


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config',
                        default='configs/text4seg/text4seg_tiny_synth_ft.py',
                        help='the stage-2 (Text4Seg fine-tuning) config')
    parser.add_argument('--stage1-config',
                        default='configs/mllmseg/mllmseg_hybrid_tiny_synth.py',
                        help='the stage-1 recipe (measured: the hybrid gives '
                        'Text4Seg a better start than '
                        'configs/self1e/self1e_tiny_synth.py)')
    parser.add_argument('--stage1-iters', type=int, default=500,
                        help='stage-1 iterations; the recipe\'s warm-up and '
                        'cosine are scaled to them (0: its own max_iters). '
                        'Measured: 500 hybrid iterations give stage 2 a '
                        'better start than its whole 30-minute recipe')
    parser.add_argument('--stage1-dir', default=None,
                        help='the stage-1 export folder (default: under '
                        '--work-dir, named after the stage-1 config and '
                        'iterations); created when missing')
    parser.add_argument('--iters', type=int, nargs='+', default=None,
                        help='stage-2 iterations at which to evaluate '
                        "(default: half and all of the stage-2 config's "
                        'max_iters, after --cfg-options)')
    parser.add_argument('--answer-format', nargs='+', default=['rrle', 'full'],
                        choices=['rrle', 'full'])
    parser.add_argument('--val-samples', type=int, default=600,
                        help='first N val expressions (0 = all)')
    parser.add_argument('--work-dir', default='work_dirs/text4seg_two_stage')
    parser.add_argument('--data-root', default=None,
                        help='synthetic data root (generated if missing)')
    parser.add_argument('--keep-schedule', action='store_true',
                        help="stage 2 keeps the config's cosine (default: "
                        'constant after warm-up, as grounding_curve)')
    parser.add_argument('--fp32', action='store_true',
                        help='train both stages in float32 (plain '
                        'OptimWrapper): bfloat16 autocast is emulated, '
                        'i.e. many times slower, on CPUs without AMX / '
                        'AVX512-BF16')
    parser.add_argument('--grid-size', type=int, default=None,
                        help='descriptor grid (default: the config\'s, 8x8 = '
                        'one cell per LLM image token of the tiny models); '
                        '16 reproduces the 16x16 runs of the doc')
    parser.add_argument('--oracle-only', action='store_true',
                        help='print the oracle cIoU and stop')
    parser.add_argument('--stage1-only', action='store_true',
                        help='train and export stage 1 when missing, then '
                        'stop (so the two answer forms can then run as two '
                        'processes)')
    grounding_curve.add_launcher_argument(parser)  # both stages
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides of the stage-2 config, e.g. '
                        'train_dataloader.batch_size=4 (per process)')
    parser.add_argument('--stage1-cfg-options', nargs='+', action=DictAction,
                        help='overrides of the stage-1 config, e.g. '
                        'train_dataloader.batch_size=16 (per process: two '
                        "processes at 16 keep the recipe's global 32)")
    return parser.parse_args(argv)


def init_launcher(launcher: str) -> None:
    """Start the process group of a torchrun launch (gloo without CUDA)."""
    if launcher == 'none':
        return
    if torch.cuda.is_available():
        from mmengine.dist import init_dist
        init_dist(launcher)
    else:
        prepare_cpu_distributed(Config(dict(launcher=launcher)))


def drop_val_loop(cfg: Config) -> None:
    """No regular validation (the benchmark evaluates in its hook)."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None


def scale_schedule(cfg: Config, iters: int) -> None:
    """Fit the config's schedule to ``iters`` (begin/end scaled)."""
    orig = int(cfg.train_cfg.max_iters)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = 10**8  # no validation in stage 1
    factor = iters / orig
    for sched in cfg.get('param_scheduler') or []:
        begin = int(round(sched.get('begin', 0) * factor))
        end = int(round(sched.get('end', orig) * factor))
        sched.begin, sched.end = begin, max(end, begin + 1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=iters, max_keep_ckpts=1)
    # IterBasedTrainLoop validates at its last iteration whatever the
    # interval: no val loop at all (the whole val split, minutes).
    drop_val_loop(cfg)


def no_autocast(cfg: Config) -> None:
    """Replace a bfloat16 ``AutocastOptimWrapper`` by a float32 one."""
    if cfg.optim_wrapper.get('type') == 'AutocastOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('dtype', None)


def stage1_export(args) -> str:
    """The stage-1 export folder; trained and exported when missing."""
    name = osp.splitext(osp.basename(args.stage1_config))[0]
    cfg = Config.fromfile(args.stage1_config)
    iters = args.stage1_iters or int(cfg.train_cfg.max_iters)
    root = osp.join(args.work_dir, f'{name}_{iters}')
    out = args.stage1_dir or osp.join(root, 'export')
    if osp.isfile(osp.join(out, INFO_FILE)):
        if is_main_process():
            print(f'Stage 1: reusing {out}')
        return out
    set_data_root(cfg, args.data_root)
    if args.stage1_cfg_options:
        cfg.merge_from_dict(args.stage1_cfg_options)
    cfg.work_dir = osp.join(root, 'train')
    cfg.experiment_name = f'stage1_{name}_{int(time.time())}'
    scale_schedule(cfg, iters)
    if args.fp32:
        no_autocast(cfg)
    cfg.launcher = args.launcher
    if is_main_process():
        print(f'Stage 1: training {args.stage1_config} for {iters} '
              f'iterations in {cfg.work_dir}')
    start = time.time()
    build_runner(cfg).train()
    minutes = (time.time() - start) / 60
    ckpt = osp.join(cfg.work_dir, f'iter_{iters}.pth')
    if not is_main_process():
        barrier()  # rank 0 exports
        return out
    # The export keeps the recipe's own config (val loaders included).
    export_cfg = Config.fromfile(args.stage1_config)
    set_data_root(export_cfg, args.data_root)
    export_refsegmentor(export_cfg, ckpt, out)
    with open(osp.join(root, 'stage1.json'), 'w') as f:
        json.dump(dict(config=args.stage1_config, iters=iters,
                       cfg_options=args.stage1_cfg_options,
                       world_size=get_world_size(), train_minutes=minutes,
                       checkpoint=ckpt, export=out),
                  f, indent=2)
    print(f'Stage 1: {minutes:.1f} min (evaluation excluded: none ran), '
          f'exported to {out}')
    barrier()
    return out


def set_data_root(cfg: Config, data_root) -> None:
    if data_root:
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.data_root = data_root


def grid_oracle(cfg: Config, val_samples: int) -> float:
    """cIoU of the GT grid itself, nearest-upsampled, on the val slice.

    Args:
        cfg: the stage-2 config (its val dataset and head grid).
        val_samples: first N expressions (0 = all).

    Returns:
        float: cIoU in percent.
    """
    from mmrefseg.registry import DATASETS
    grid_hw = cfg.model.decode_head.get('grid_size', 16)
    grid_hw = (grid_hw, grid_hw) if isinstance(grid_hw, int) else grid_hw
    dataset = cfg.val_dataloader.dataset.copy()
    dataset['pipeline'] = [dict(type='LoadRefImage'),
                           dict(type='LoadRefMasks')]
    if val_samples:
        dataset['indices'] = val_samples
    with DefaultScope.overwrite_default_scope('mmrefseg'):
        dataset = DATASETS.build(dataset)
    inter = union = 0
    for i in range(len(dataset)):
        for mask in dataset[i]['gt_masks']:
            gt = np.asarray(mask) > 0
            _, pred = grid_oracle_mask(gt, grid_hw)
            inter += int((pred & gt).sum())
            union += int((pred | gt).sum())
    return 100.0 * inter / max(union, 1)


def set_answer_steps(cfg: Config, **fields) -> None:
    """Set ``fields`` on every loader's ``Text4SegAnswer`` step."""
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            if step['type'] == 'Text4SegAnswer':
                step.update(fields)


def set_grid_size(cfg: Config, grid: int) -> None:
    """Use a ``grid`` x ``grid`` descriptor grid in the head and answers.

    R-RLE answers get ``max(160, 16 * grid)`` new tokens (160 at 8x8, 256
    at 16x16, what the measured runs used).
    """
    cfg.model.decode_head.grid_size = grid
    cfg.model.decode_head.max_new_tokens = max(160, 16 * grid)
    set_answer_steps(cfg, grid_size=grid)


def default_marks(cfg: Config, cfg_options: Optional[dict]) -> List[int]:
    """Half and all of the stage-2 schedule: the marks the recipe's
    measured runs used (e.g. 1950 and 3900)."""
    cfg = copy.deepcopy(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    last = int(cfg.train_cfg.max_iters)
    return [last // 2, last]


def stage2_config(args, export_dir: str, answer_format: str) -> str:
    """Write the stage-2 config for one answer form; returns its path."""
    cfg = Config.fromfile(args.config)
    old = cfg.model.backbone.get('tokenizer') or \
        cfg.model.backbone.get('pretrained')
    cfg_dict = replace_values(cfg.to_dict(), 'tokenizer', old, export_dir)
    cfg_dict['model']['backbone'].update(pretrained=export_dir,
                                         tokenizer=export_dir)
    cfg = Config(cfg_dict)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    head = cfg.model.decode_head
    head.answer_format = answer_format
    if args.grid_size:
        set_grid_size(cfg, args.grid_size)
    if answer_format == 'full':
        grid = head.get('grid_size', 16)
        cells = grid * grid if isinstance(grid, int) else grid[0] * grid[1]
        head.max_new_tokens = max(head.get('max_new_tokens', 0),
                                  FULL_TOKENS_PER_CELL * cells)
    set_answer_steps(cfg, answer_format=answer_format)
    if args.fp32:
        no_autocast(cfg)
    # A checkpoint at the last mark, for tools/test.py and grounding_by_kind.
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=max(args.iters),
        max_keep_ckpts=1)
    path = osp.join(args.work_dir, f'stage2_{answer_format}.py')
    if is_main_process():
        os.makedirs(args.work_dir, exist_ok=True)  # stage 1 may live elsewhere
        cfg.dump(path)
    barrier()
    return path


def run_stage2(args, path: str, answer_format: str) -> List[dict]:
    """Train stage 2 with the grounding-curve evaluation marks."""
    argv = [path, '--iters', *map(str, args.iters), '--val-samples',
            str(args.val_samples), '--work-dir',
            osp.join(args.work_dir, f'stage2_{answer_format}')]
    if args.data_root:
        argv += ['--data-root', args.data_root]
    if args.keep_schedule:
        argv.append('--keep-schedule')
    argv += ['--launcher', args.launcher]
    cfg = grounding_curve.build_cfg(grounding_curve.parse_args(argv))
    # grounding_curve.build_cfg has dropped the val loop (the hook holds
    # its own copies of the val loaders and evaluator).
    cfg.experiment_name = f'stage2_{answer_format}_{int(time.time())}'
    _, rows = grounding_curve.train_and_evaluate(cfg)
    return rows


def _metric(metrics: Dict[str, float], suffix: str, default=float('nan')):
    for key, value in metrics.items():
        if key.split('/', 1)[-1] == suffix:
            return value
    return default


def format_rows(answer_format: str, rows: List[dict],
                oracle: float) -> List[str]:
    """Markdown rows: cIoU real / shuffled, share of the oracle, parsing."""
    lines = []
    for row in rows:
        real, shuffled = row['real'], row['shuffled']
        r = _metric(real, 'cIoU')
        s = _metric(shuffled, 'cIoU')
        kinds = {k.split('parse_fail/')[-1]: int(v) for k, v in real.items()
                 if 'parse_fail/' in k}
        kinds_text = ', '.join(f'{k} {v}' for k, v in sorted(
            kinds.items(), key=lambda kv: -kv[1])) or '-'
        lines.append(
            f'| {answer_format} | {row["iters"]} | {row["minutes"]:.1f} | '
            f'{r:.1f} | {s:.1f} | {r - s:.1f} | {oracle:.1f} | '
            f'{100 * r / oracle:.0f}% | '
            f'{_metric(real, "parse_fail_rate"):.1f} | {kinds_text} |')
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    init_launcher(args.launcher)
    cfg = Config.fromfile(args.config)
    set_data_root(cfg, args.data_root)
    if args.iters is None:
        args.iters = default_marks(cfg, args.cfg_options)
    if args.grid_size:
        set_grid_size(cfg, args.grid_size)
    if is_main_process():
        grounding_curve.ensure_synthetic(
            cfg.train_dataloader.dataset.data_root)
    barrier()
    start = time.time()
    oracle = grid_oracle(cfg, args.val_samples)
    if is_main_process():
        print(f'Grid oracle cIoU on {args.val_samples or "all"} val '
              f'expressions: {oracle:.1f}')
    if args.oracle_only:
        finish_distributed()
        return 0
    export_dir = stage1_export(args)
    if args.stage1_only:
        finish_distributed()
        return 0
    lines = []
    for answer_format in args.answer_format:
        path = stage2_config(args, export_dir, answer_format)
        if is_main_process():
            print(f'Stage 2 ({answer_format}): {path}')
        rows = run_stage2(args, path, answer_format)
        lines += format_rows(answer_format, rows, oracle)
    if is_main_process():
        print('\n| answer | iters | train min | cIoU real | cIoU shuffled '
              '| gap | grid oracle | real / oracle | parse fail % '
              '| fail kinds |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        print('\n'.join(lines))
        print(f'\nstage 1: {export_dir}; wall time '
              f'{(time.time() - start) / 60:.1f} min')
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(main())
