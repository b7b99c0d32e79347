# Copyright (c) mmrefseg contributors.
"""Expressions per second with the image encoded once vs per expression.

Issue #19. For each method (MLLMSeg pure, SELF1E, Text4Seg) and K = 1, 3,
7, 15 expressions of one synthetic val image, runs the K phrases

* per expression (``grouping='expression'``: K samples, each encodes the
  image and runs its own conversation; the evaluation protocol), and
* grouped by image (``grouping='image'``: one sample, K independent
  conversations with the image encoded once),

and prints expressions/s of both (median of ``--repeats`` steps of
``model.test_step``; the batch is built outside the timing), the speed-up,
the FLOP ratio counted (``FlopCounterMode``, attention included) in one
extra step of each path at K = 7, and how far the grouped predictions are
from the per-expression ones (largest |probability difference|, differing
mask pixels): they must be identical. ``--samples N``
also counts identical binary masks on the first N synthetic val expressions
(grouped by image). A last table gives the analytic FLOP bound of the
speed-up at 7 expressions per image, at the measured model's depth and at
InternVL2.5-8B's full depth (ViT + projector + LLM prefill over the shared
prefix, against the expression's suffix and the mask head).

Models (random weights, nothing downloaded): ``--model tiny`` the methods'
tiny configs; ``--model proxy8b`` the same methods on an 8B-shaped proxy
(configs/_base_/models/internvl2_5_8b_proxy.py: InternVL2.5-8B widths,
depth cut to 3 ViT : 4 LLM layers; ``--full-depth`` restores 24 : 32, for a
GPU). Text4Seg generates at most ``--max-new-tokens`` tokens (default 16:
the prefill dominates; a real 16x16 answer is ~150 tokens).

    python benchmarks/multi_expression_speed.py --samples 200
    flock /tmp/mmrefseg-cpu.lock python benchmarks/multi_expression_speed.py \
        --model proxy8b --methods mllmseg
    python benchmarks/multi_expression_speed.py --model proxy8b \
        --full-depth --device cuda --dtype bfloat16          # on a GPU
    python benchmarks/multi_expression_speed.py --dry-run   # seconds

Needs the synthetic dataset (``--data-root``, default data/synthetic):
``python tools/dataset_converters/generate_synthetic_refer.py --out
data/synthetic``.
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine.config import Config

from mmrefseg.registry import DATASETS, MODELS
from mmrefseg.testing.internvl_flops import multi_expression_flops
from mmrefseg.testing.multi_expression import (
    FULL_8B_CONFIG,
    REPO,
    compare_runs,
    prepare_model,
    prompt_tokens,
    run_grouping,
    speed_config,
)
from mmrefseg.utils import register_all_modules

#: config, and what the image-grouped path can share: 'prefix' (the image
#: comes first and cannot see the expression under causal attention: the
#: LLM prefill over system + image runs once) or 'vit' (SELF1E's
#: dual-perception mask lets the image tokens read the expression: only the
#: ViT and projector run once, the K conversations run as one batch).
METHODS = {
    'mllmseg': ('configs/mllmseg/mllmseg_tiny_synth.py', 'prefix'),
    'self1e': ('configs/self1e/self1e_tiny_synth.py', 'vit'),
    'text4seg': ('configs/text4seg/text4seg_tiny_synth.py', 'prefix'),
}
BOUND_K = 7
SPEED_HEADER = ('| method | K | per-expression batch | '
                'per-expression expr/s | grouped expr/s | '
                'speed-up | counted FLOP ratio | max abs(dp) | '
                'differing mask px |')
SAMPLES_HEADER = ('| method | images | expressions | identical masks | '
                  'non-empty masks | max abs(dp) | differing mask px | '
                  'identical answers |')
BOUND_HEADER = ('| method | shares | prefix + suffix tokens | head GFLOP | '
                'bound @ measured depth | bound @ full 8B depth |')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', choices=('tiny', 'proxy8b'), default='tiny')
    p.add_argument('--methods', nargs='+', default=list(METHODS),
                   choices=list(METHODS))
    p.add_argument('--expressions', nargs='+', type=int,
                   default=[1, 3, 7, 15], help='K values per image')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed steps per path and K, median (default: 3 '
                   'tiny, 1 proxy8b)')
    p.add_argument('--warmup', type=int, default=1,
                   help='untimed steps per path before the first K')
    p.add_argument('--samples', type=int, default=0,
                   help='count identical masks on N val expressions')
    p.add_argument('--data-root', default='data/synthetic')
    p.add_argument('--dtype', default='float32',
                   choices=('float32', 'bfloat16', 'float16'))
    p.add_argument('--device', default='cpu')
    p.add_argument('--full-depth', action='store_true',
                   help='proxy8b at 24 ViT / 32 LLM layers (GPU)')
    p.add_argument('--per-expression-batch', choices=('k', '1', 'both'),
                   default='k',
                   help="the per-expression path's K samples in one batch "
                   "(k, what tools/test.py does), one step each (1, the "
                   "peers' scripts) or both baselines against one grouped "
                   "run (a row each)")
    p.add_argument('--max-new-tokens', type=int, default=16,
                   help="Text4Seg's generation budget")
    p.add_argument('--checkpoint', nargs='+', default=[],
                   metavar='METHOD=PATH', help='trained weights (tiny)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='also write every row to this file')
    p.add_argument('--dry-run', action='store_true',
                   help='every variant at tiny depth, one step, no timing')
    args = p.parse_args(argv)
    if min(args.expressions) < 1:
        p.error('--expressions must be >= 1')
    if args.repeats is None:
        args.repeats = 3 if args.model == 'tiny' else 1
    if args.full_depth and args.model != 'proxy8b':
        p.error('--full-depth needs --model proxy8b')
    return args


def val_images(cfg: Config, data_root: str, limit: int) -> List[dict]:
    """The first val images with their phrases, up to ``limit`` phrases.

    Args:
        cfg (Config): A method config (its val dataset settings).
        data_root (str): The synthetic dataset's root.
        limit (int): Phrases wanted in all (the last image is cut).

    Returns:
        list[dict]: ``img_path`` and ``phrases`` per image.
    """
    root = data_root if osp.isdir(data_root) else osp.join(REPO, data_root)
    if not osp.isdir(root):
        raise FileNotFoundError(
            f'{data_root} not found: generate it with python tools/'
            'dataset_converters/generate_synthetic_refer.py --out '
            f'{data_root}')
    settings = dict(cfg.val_dataloader.dataset)
    settings.update(data_root=root, test_mode=True, test_grouping='image',
                    pipeline=[])
    dataset = DATASETS.build(settings)
    images, total = [], 0
    for i in range(len(dataset)):
        if total >= limit:
            break
        info = dataset.get_data_info(i)
        phrases = [e['text'] for e in info['expressions']][:limit - total]
        images.append(dict(img_path=info['img_path'], phrases=phrases))
        total += len(phrases)
    return images


def build(method: str, args: argparse.Namespace):
    """The method's config and its model, ready to evaluate."""
    cfg = speed_config(METHODS[method][0], args.model, args.full_depth,
                       args.dry_run, args.max_new_tokens)
    torch.manual_seed(args.seed)
    # Parameters created on the device: the full-depth proxy is 8B.
    with torch.device(args.device):
        model = MODELS.build(cfg.model)
    weights = dict(c.split('=', 1) for c in args.checkpoint)
    if method in weights:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, weights[method], map_location='cpu')
    return cfg, prepare_model(model, args.device, args.dtype)


def _read(path: str):
    from mmrefseg.datasets.transforms.loading import LoadRefImage
    return LoadRefImage(check_size=False)(dict(img_path=path))['img']


def speed_rows(method: str, cfg, model, args, image, pool) -> List[dict]:
    """One row per K and per-expression baseline: both groupings timed
    and compared."""
    rows = []
    ks = args.expressions
    if args.dry_run:  # one K, with more than one expression if asked
        ks = [min([k for k in ks if k > 1] or ks)]
    count_k = BOUND_K if BOUND_K in ks else ks[-1]
    # 'k': one batch of K samples; '1': one test_step per expression.
    baselines = ['k', '1'] if args.per_expression_batch == 'both' \
        else [args.per_expression_batch]
    for index, k in enumerate(ks):
        phrases = [pool[i % len(pool)] for i in range(k)]
        runs, errors = {}, {}
        first = index == 0 and not args.dry_run
        for name in ['image'] + baselines:
            grouping = 'image' if name == 'image' else 'expression'
            try:
                # FLOPs are counted in one extra untimed step, at one K
                # only (a proxy8b expression takes ~10 s on 2 cores); the
                # second baseline does the same work, so once is enough.
                runs[name] = run_grouping(
                    model, cfg, image, phrases, grouping,
                    repeats=0 if args.dry_run else args.repeats,
                    warmup=args.warmup if first else 0,
                    count_flops=k == count_k and
                    name in ('image', baselines[0]),
                    device=args.device, one_per_step=name == '1')
            except Exception as exc:  # keep the other rows
                errors[name] = f'{type(exc).__name__}: {exc}'
        for base in baselines:
            row = dict(kind='speed', method=method, k=k, baseline=base)
            if 'image' in errors:
                row['image_error'] = errors['image']
            if base in errors:
                row['expression_error'] = errors[base]
            per, grouped = runs.get(base), runs.get('image')
            flops = next((runs[b].flops for b in baselines
                          if b in runs and runs[b].flops), None)
            if per is not None and grouped is not None:
                row.update(compare_runs(per, grouped))
                row.update(per_expr_s=per.expressions_per_s,
                           grouped_expr_s=grouped.expressions_per_s,
                           speedup=grouped.expressions_per_s /
                           per.expressions_per_s,
                           flop_ratio=flops / grouped.flops
                           if flops and grouped.flops else float('nan'))
            head = next((runs[b].head_flops for b in baselines
                         if b in runs and runs[b].head_flops), None)
            if head:
                row['head_flops'] = head / k
            rows.append(row)
            print(_speed_line(row), flush=True)
    return rows


def _fmt(value, spec: str, unit: str = '') -> str:
    if value is None or value != value:  # None or nan
        return '-'
    return format(value, spec) + unit


def _speed_line(r: dict) -> str:
    errors = [r[k] for k in ('expression_error', 'image_error') if k in r]
    if errors:
        return (f"| {r['method']} | {r['k']} | {r['baseline']} | failed: "
                f"{'; '.join(errors)} |")
    texts = (f" ({r['identical_texts']}/{r['k']} answers equal)"
             if 'identical_texts' in r else '')
    return (f"| {r['method']} | {r['k']} | {r['baseline']} | "
            f"{_fmt(r['per_expr_s'], '.2f')} | "
            f"{_fmt(r['grouped_expr_s'], '.2f')} | "
            f"{_fmt(r['speedup'], '.2f', 'x')} | "
            f"{_fmt(r['flop_ratio'], '.2f', 'x')} | "
            f"{r['max_prob_diff']:.2e} | {r['mask_pixels_differ']}{texts} |")


def samples_row(method: str, cfg, model, args) -> dict:
    """Identical binary masks of both groupings on N val expressions."""
    row = dict(kind='samples', method=method, images=0, expressions=0,
               identical_masks=0, non_empty=0, max_prob_diff=0.0,
               mask_pixels_differ=0)
    for item in val_images(cfg, args.data_root, args.samples):
        image = _read(item['img_path'])
        try:
            per, grouped = (run_grouping(model, cfg, image, item['phrases'],
                                         g, count_flops=False,
                                         device=args.device)
                            for g in ('expression', 'image'))
            cmp = compare_runs(per, grouped)
        except Exception as exc:
            row['error'] = f"{item['img_path']}: {type(exc).__name__}: {exc}"
            break
        row['images'] += 1
        row['non_empty'] += int(per.masks.flatten(1).any(1).sum())
        row['max_prob_diff'] = max(row['max_prob_diff'],
                                   cmp['max_prob_diff'])
        for key in ('expressions', 'identical_masks', 'mask_pixels_differ',
                    'identical_texts'):
            if key in cmp:
                row[key] = row.get(key, 0) + cmp[key]
    return row


def _samples_line(r: dict) -> str:
    line = (f"| {r['method']} | {r['images']} | {r['expressions']} | "
            f"{r['identical_masks']} | {r['non_empty']} | "
            f"{r['max_prob_diff']:.2e} | {r['mask_pixels_differ']} | "
            f"{r.get('identical_texts', '-')} |")
    return line + (f" failed: {r['error']} |" if 'error' in r else '')


def bound_row(method: str, cfg, model, image, phrase, head_flops,
              full_width_head: bool) -> dict:
    """Analytic FLOP ratio at K=7, at the measured and the full 8B depth.

    The full-depth bound takes InternVL2.5-8B's config, 256 image tokens
    in place of the measured model's, the measured suffix, and the head
    FLOPs counted on the measured model: only meaningful when its head has
    the released width (``full_width_head``), else left out.
    """
    share = METHODS[method][1]
    tokens = prompt_tokens(model, cfg, image, phrase)
    head = model.decode_head
    gen = (head.generation_cfg or {}).get('max_new_tokens', 0) \
        if head.mask_source == 'answers' else 0
    kwargs = dict(suffix_tokens=tokens['suffix'], num_expressions=BOUND_K,
                  share=share, head_flops=head_flops or 0.0,
                  generated_tokens=gen)
    arch = cfg.model.backbone.config
    measured = multi_expression_flops(
        arch, prefix_tokens=tokens['prefix'], **kwargs).ratio
    full = Config.fromfile(osp.join(REPO, FULL_8B_CONFIG)).backbone_arch
    # The same system turn, with the real model's image tokens.
    prefix_full = tokens['prefix'] - arch['image_seq_length'] + \
        full['image_seq_length']
    full_ratio = multi_expression_flops(
        full, prefix_tokens=prefix_full, **kwargs).ratio \
        if full_width_head else float('nan')
    return dict(kind='bound', method=method, share=share, **tokens,
                prefix_full=prefix_full, generated_tokens=gen,
                head_gflop=(head_flops or 0.0) / 1e9,
                bound_measured=measured, bound_full=full_ratio)


def _bound_line(r: dict) -> str:
    gen = r['generated_tokens']
    gen_txt = f' + {gen} generated' if gen else ''
    return (f"| {r['method']} | {r['share']} | {r['prefix']} + "
            f"{r['suffix']}{gen_txt} (8B: {r['prefix_full']} + ...) | "
            f"{r['head_gflop']:.3f} | "
            f"{r['bound_measured']:.2f}x | "
            f"{_fmt(r['bound_full'], '.2f', 'x')} |")


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Run the benchmark; returns every row printed."""
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    # A context, not torch.set_grad_enabled: main() also runs inside tests.
    with torch.no_grad():
        return _run(args)


def _run(args: argparse.Namespace) -> List[dict]:
    rows: List[dict] = []
    for i, method in enumerate(args.methods):
        cfg, model = build(method, args)
        items = val_images(cfg, args.data_root, max(args.expressions))
        pool = [p for item in items for p in item['phrases']]
        image = _read(items[0]['img_path'])
        if i == 0:
            info = cfg.get('_proxy_info')
            depth = (f", ViT:LLM layers {info['vit_layers']}:"
                     f"{info['llm_layers']} (full {info['full_vit_layers']}:"
                     f"{info['full_llm_layers']})") if info else ''
            print(f'\n### Expressions/s, model {args.model}{depth}, '
                  f'{args.dtype} on {args.device}, per-expression batch '
                  f'{args.per_expression_batch}'
                  f"{' (dry run: not timed)' if args.dry_run else ''}\n")
            print(SPEED_HEADER)
            print('|---' * 9 + '|')
        speed = speed_rows(method, cfg, model, args, image, pool)
        head = next((r['head_flops'] for r in speed if 'head_flops' in r),
                    None)
        rows += speed
        rows.append(bound_row(method, cfg, model, image, pool[0], head,
                              full_width_head=args.model == 'proxy8b'))
        if args.samples:
            rows.append(samples_row(method, cfg, model, args))
        del model  # one model in memory at a time (the proxy is ~4 GB)
    print(f'\n### FLOP bound of the speed-up at K={BOUND_K} (analytic, '
          'attention over all keys; full depth: InternVL2.5-8B with 256 '
          'image tokens and the measured head, proxy8b only)\n')
    print(BOUND_HEADER)
    print('|---' * 6 + '|')
    for r in rows:
        if r['kind'] == 'bound':
            print(_bound_line(r))
    if args.samples:
        print(f'\n### Same masks? First {args.samples} synthetic val '
              'expressions, grouped by image\n')
        print(SAMPLES_HEADER)
        print('|---' * 8 + '|')
        for r in rows:
            if r['kind'] == 'samples':
                print(_samples_line(r))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    result = main()
    failed = [r for r in result
              if any(k.endswith('error') for k in r)]
    sys.exit(1 if failed else 0)
