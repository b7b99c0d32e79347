# Copyright (c) mmrefseg contributors.
"""Seconds per training step of a config, under named variants.

Each variant is a set of ``--cfg-options`` plus a thread count, timed in a
fresh process (so ``torch.compile`` caches, thread pools and the OpenMP wait
policy start clean) on the same pre-loaded batches: ``--warmup`` steps
(compilation happens there) and then ``--steps`` timed ``train_step`` calls
(forward, backward, optimizer step). Data loading, logging and hooks are
left out; ``tools/train.py``'s log gives the whole loop's time.

    OMP_WAIT_POLICY=ACTIVE python benchmarks/train_step_speed.py \\
        configs/text4seg/text4seg_tiny_synth_ft_bf16.py --threads 2 \\
        --variant 'eager:model.backbone.compile_blocks=False' \\
        --variant 'compiled:'

``--variant NAME:K=V K=V`` (no options after the colon: the config as it
is). Prints one table row per variant, in order, one process at a time.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

RESULT = 'STEP_SPEED_RESULT '


def parse_variant(text: str) -> Tuple[str, Dict[str, object]]:
    """``'name:k=v k=v'`` -> ``(name, {k: v})`` with Python literals read.

    Args:
        text (str): one ``--variant`` argument.

    Returns:
        tuple: the name and its config options.
    """
    name, sep, opts = text.partition(':')
    if not sep or not name:
        raise ValueError(f'--variant {text!r}: expected NAME:K=V K=V ...')
    options: Dict[str, object] = {}
    for item in opts.split():
        key, eq, value = item.partition('=')
        if not eq:
            raise ValueError(f'--variant {text!r}: {item!r} is not K=V')
        options[key] = _literal(value)
    return name, options


def _literal(value: str) -> object:
    import ast
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--variant', action='append', default=None,
                   help="NAME:K=V K=V (repeatable); default 'config:'")
    p.add_argument('--batch-size', type=int, default=None,
                   help="train_dataloader.batch_size (default: the config's)")
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads of each variant process')
    p.add_argument('--warmup', type=int, default=12,
                   help='untimed steps first (compilation happens there)')
    p.add_argument('--steps', type=int, default=20, help='timed steps')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def time_variant(args: argparse.Namespace, options: Dict[str, object]
                 ) -> dict:
    """Build the runner's model and optimizer, time ``train_step``.

    Returns:
        dict: ``step_s`` (mean timed step), ``warmup_s`` (all warm-up
        steps), ``batch_size``, ``threads``.
    """
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmrefseg.utils import register_all_modules
    torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(dict(options))
    cfg.work_dir = cfg.get('work_dir') or os.path.join(
        'work_dirs', 'train_step_speed')
    loader_cfg = cfg.train_dataloader
    if args.batch_size:
        loader_cfg.batch_size = args.batch_size
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    runner = Runner.from_cfg(cfg)
    model = runner.model
    loader = iter(runner.build_dataloader(loader_cfg))
    batches = [next(loader) for _ in range(args.warmup + args.steps)]
    optim = runner.build_optim_wrapper(cfg.optim_wrapper)
    model.train()
    start = time.perf_counter()
    for batch in batches[:args.warmup]:
        model.train_step(batch, optim)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for batch in batches[args.warmup:]:
        model.train_step(batch, optim)
    step = (time.perf_counter() - start) / max(args.steps, 1)
    return dict(step_s=step, warmup_s=warm,
                batch_size=loader_cfg.batch_size, threads=args.threads)


def run_variant(args: argparse.Namespace, spec: str) -> dict:
    """Time one variant in a fresh Python process."""
    cmd = [sys.executable, os.path.abspath(__file__), args.config,
           '--threads', str(args.threads), '--warmup', str(args.warmup),
           '--steps', str(args.steps), '--worker', spec]
    if args.batch_size:
        cmd += ['--batch-size', str(args.batch_size)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f'variant {spec!r} failed (exit {proc.returncode}):'
                       f'\n{proc.stderr[-3000:]}')


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Print the table; returns its rows."""
    args = parse_args(argv)
    if args.worker is not None:
        _, options = parse_variant(args.worker)
        print(RESULT + json.dumps(time_variant(args, options)), flush=True)
        return []
    specs = args.variant or ['config:']
    for spec in specs:
        parse_variant(spec)  # refuse a malformed one before any timing
    wait = os.environ.get('OMP_WAIT_POLICY', 'default')
    print(f'\n### {args.config}: {args.steps} timed steps after '
          f'{args.warmup}, OMP_WAIT_POLICY={wait}\n')
    print('| variant | threads | batch | s/step | samples/s | warm-up s |\n'
          '|---|---|---|---|---|---|', flush=True)
    rows = []
    for spec in specs:
        row = dict(run_variant(args, spec), variant=spec.partition(':')[0])
        rows.append(row)
        print(f"| {row['variant']} | {row['threads']} | {row['batch_size']} "
              f"| {row['step_s']:.4f} | "
              f"{row['batch_size'] / row['step_s']:.1f} | "
              f"{row['warmup_s']:.1f} |", flush=True)
    return rows


if __name__ == '__main__':
    main()
