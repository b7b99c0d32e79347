# Copyright (c) mmrefseg contributors.
"""Train a referring segmentation model from a config.

Follows MMSegmentation 1.2.2's ``tools/train.py``::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

A config that sets ``runner_type`` (e.g. ``'FlexibleRunner'`` with an FSDP
or DeepSpeed ``strategy``) is built through the ``RUNNERS`` registry,
otherwise with :meth:`mmengine.runner.Runner.from_cfg`.
"""
import argparse
import logging
import os
import os.path as osp
from typing import List, Optional

# Idle OpenMP threads sleep instead of spinning, so another busy process
# slows training down in proportion instead of several-fold (read when torch
# loads, hence before the imports below; docs/experiments.md, CPU threads).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmrefseg.apis import (
    build_runner,
    finish_distributed,
    resolve_work_dir,
    use_tolerant_eval_loops,
)
from mmrefseg.apis.config_checks import (
    check_cfg_options,
    check_checkpoint_exists,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Train a referring segmentation model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic mixed precision (AmpOptimWrapper); the dtype '
        'is optim_wrapper.dtype or the config\'s top-level `amp_dtype` '
        '(e.g. "bfloat16"), float16 otherwise')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, xxx=yyy pairs merged into it; '
        'a list is written key="[a,b]" or key=a,b, nested tuples as '
        'key="[(a,b),(c,d)]" (quotes needed, no white space)')
    parser.add_argument(
        '--fail-on-bad-data',
        action='store_true',
        help='end the evaluation at the first batch that cannot be loaded; '
        'by default such batches are skipped, reported and listed in '
        '<log_dir>/skipped_batches_<stage>.json, and the metrics of the '
        'rest are still computed')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_amp(cfg: Config) -> Config:
    """Switch the config to mixed precision training.

    ``OptimWrapper`` becomes ``AmpOptimWrapper`` with a dynamic loss scale;
    an ``AmpOptimWrapper`` is kept as it is. The dtype is
    ``optim_wrapper.dtype`` when set, else the config's top-level
    ``amp_dtype`` (``'bfloat16'`` for the LLM configs), else float16.

    Args:
        cfg (Config): The config, modified in place.

    Returns:
        Config: The same config.
    """
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise ValueError('--amp needs an `optim_wrapper` in the config')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log(
            'AMP training is already enabled in your config.',
            logger='current',
            level=logging.WARNING)
        return cfg
    if wrapper_type != 'OptimWrapper':
        # DeepSpeed/FSDP wrappers take their precision from the strategy.
        raise ValueError(
            f'--amp only converts `OptimWrapper`, but the config uses '
            f'`{wrapper_type}`; set its mixed precision in the config')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')
    amp_dtype = cfg.get('amp_dtype')
    if amp_dtype is not None and optim_wrapper.get('dtype') is None:
        optim_wrapper.dtype = amp_dtype
    return cfg


def build_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command line to it.

    Args:
        args (argparse.Namespace): Output of :func:`parse_args`.

    Returns:
        Config: The config to build the runner from.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: command line > config > ./work_dirs/<config name>
    resolve_work_dir(cfg, args.config, args.work_dir)
    if not args.fail_on_bad_data:
        use_tolerant_eval_loops(cfg)
    if args.amp:
        apply_amp(cfg)
    cfg.resume = resolve_resume(cfg, args.resume)
    return cfg


def resolve_resume(cfg: Config, resume: bool) -> bool:
    """Whether the runner should resume, with one message when it cannot.

    ``--resume`` resumes from ``load_from`` when the config sets one (which
    must exist), else from the ``last_checkpoint`` that CheckpointHook
    writes in the work_dir. With neither, MMEngine would warn "Did not find
    last_checkpoint" and then log "Auto resumed from ... None"; here one
    line says there is nothing to resume and training starts from scratch.

    Args:
        cfg (Config): The config with its final ``work_dir``.
        resume (bool): ``--resume``.

    Returns:
        bool: The value for ``cfg.resume``.
    """
    if not resume:
        return False
    if cfg.get('load_from') is not None:
        check_checkpoint_exists(cfg.load_from, '--resume: load_from')
        return True
    # mmengine's find_latest_checkpoint would log its own warning.
    if not osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):
        print_log(
            f'--resume: nothing to resume in {cfg.work_dir} (no '
            'last_checkpoint there); training starts from scratch.',
            logger='current',
            level=logging.WARNING)
        return False
    return True


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: parse, register, build and train."""
    args = parse_args(argv)
    # Registers our components and mmseg's, and installs the safe loader
    # for MMEngine checkpoints used by --resume and load_from.
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    runner = build_runner(cfg)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
