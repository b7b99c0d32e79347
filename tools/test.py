# Copyright (c) mmrefseg contributors.
"""Test (and evaluate) a referring segmentation checkpoint.

Follows MMSegmentation 1.2.2's ``tools/test.py``::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show] [--show-dir DIR] [--wait-time S] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

The metrics come from the config's ``test_evaluator`` (``RefSegMetric``).
``--out`` additionally dumps every prediction to a pickle file through
MMEngine's ``DumpResults``; that keeps all masks in memory, so use it on
small splits only.
"""
import argparse
import logging
import os
from typing import List, Optional

# Idle OpenMP threads sleep instead of spinning, so another busy process
# slows training down in proportion instead of several-fold (read when torch
# loads, hence before the imports below; docs/experiments.md, CPU threads).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import Config, ConfigDict, DictAction
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
        description='Test (and evaluate) a referring segmentation model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory for logs and the evaluation results (json)')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the raw predictions to this .pkl file for offline '
        'evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images are saved (needs a '
        'visualization hook in the config)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg: Config,
                               args: argparse.Namespace) -> Config:
    """Turn drawing on in ``default_hooks.visualization`` if there is one.

    Args:
        cfg (Config): The config, modified in place.
        args (argparse.Namespace): Output of :func:`parse_args`.

    Returns:
        Config: The same config.
    """
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        print_log(
            '--show/--show-dir ignored: the config has no '
            '`default_hooks.visualization`; add e.g. '
            "visualization=dict(type='SegVisualizationHook') to draw "
            'predictions.',
            logger='current',
            level=logging.WARNING)
        return cfg
    hook = hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir and hook.get('type') in ('RefSegVisualizationHook',
                                              'mmrefseg.RefSegVisualizationHook'):
        # One picture per sample, named after the image and sentence ids.
        hook['out_dir'] = args.show_dir
    elif args.show_dir:
        if cfg.get('visualizer') is None:
            print_log(
                '--show-dir ignored: the config has no `visualizer`.',
                logger='current',
                level=logging.WARNING)
        else:
            cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def add_dump_results(cfg: Config, out: str) -> Config:
    """Append MMEngine's ``DumpResults`` to the test evaluator.

    Args:
        cfg (Config): The config, modified in place.
        out (str): The ``.pkl``/``.pickle`` file to write.

    Returns:
        Config: The same config.
    """
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {out}')
    dump = ConfigDict(type='DumpResults', out_file_path=out)
    evaluator = cfg.get('test_evaluator')
    if evaluator is None:
        cfg.test_evaluator = [dump]
    elif isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dump]
    elif 'metrics' in evaluator:  # dict(type='Evaluator', metrics=...)
        metrics = evaluator['metrics']
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        evaluator['metrics'] = list(metrics) + [dump]
    else:
        cfg.test_evaluator = [evaluator, dump]
    return cfg


def build_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command line to it.

    Args:
        args (argparse.Namespace): Output of :func:`parse_args`.

    Returns:
        Config: The config to build the runner from.
    """
    check_checkpoint_exists(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: command line > config > ./work_dirs/<config name>
    resolve_work_dir(cfg, args.config, args.work_dir)
    if not args.fail_on_bad_data:
        use_tolerant_eval_loops(cfg)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)
    if args.out is not None:
        add_dump_results(cfg, args.out)
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: parse, register, build and test."""
    args = parse_args(argv)
    # Registers our components and mmseg's, and installs the safe loader
    # for MMEngine checkpoints used by load_from.
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    runner = build_runner(cfg)
    runner.test()
    finish_distributed()


if __name__ == '__main__':
    main()
