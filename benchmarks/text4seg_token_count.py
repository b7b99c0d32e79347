# Copyright (c) mmrefseg contributors.
"""How many tokens do Text4Seg's descriptors cost? Full vs I-RLE vs R-RLE.

Encodes every GT mask of a REFER split as semantic descriptors (the
expression on foreground cells, ``others`` elsewhere) in the three text
forms of the paper's ablation and counts the tokens of the descriptor text
(the part between ``<seg>`` and ``</seg>``) with a tokenizer:

    python benchmarks/text4seg_token_count.py --grid 16
    python benchmarks/text4seg_token_count.py --grid 8 16 24 \
        --tokenizer checkpoints/InternVL2-8B-hf --data-root data/refer_seg \
        --dataset refcoco

The paper reports 16x16 full descriptors ~583 tokens -> R-RLE ~154 (-74%)
on RefCOCO. The defaults read the synthetic dataset (generated if missing)
with the tiny CPU tokenizer.
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, List

import numpy as np

from mmrefseg.codecs.rrle import (
    encode_full_descriptors,
    encode_irle,
    encode_rrle,
    grid_to_labels,
    mask_to_grid,
    sanitize_label,
)

FORMATS = (('full descriptors', encode_full_descriptors),
           ('I-RLE', encode_irle), ('R-RLE', encode_rrle))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--dataset', default='synthrefcoco',
                        help='dataset folder name under data root')
    parser.add_argument('--split-by', default='unc')
    parser.add_argument('--split', default='val')
    parser.add_argument('--img-prefix', default='images/synthetic',
                        help='image folder relative to the data root '
                        '(only used to fill img_path)')
    parser.add_argument('--grid', type=int, nargs='+', default=[16],
                        help='grid sides to measure')
    parser.add_argument('--tokenizer', default='tiny_bpe',
                        help="'tiny_bpe' or a local HF tokenizer directory")
    parser.add_argument('--vocab-size', type=int, default=1024,
                        help='vocabulary of the tiny tokenizer')
    parser.add_argument('--max-samples', type=int, default=0,
                        help='first N expressions (0 = all)')
    return parser.parse_args(argv)


def count_tokens(masks: List[np.ndarray], texts: List[str], grid: int,
                 tokenizer) -> Dict[str, np.ndarray]:
    """Tokens of the descriptor text of every mask in every format.

    Args:
        masks (list[np.ndarray]): ``(H, W)`` GT masks.
        texts (list[str]): The expression of each mask (its label).
        grid (int): Grid side.
        tokenizer: A transformers tokenizer.

    Returns:
        dict[str, np.ndarray]: Format name -> token count per mask.
    """
    counts = {name: [] for name, _ in FORMATS}
    for mask, text in zip(masks, texts):
        labels = grid_to_labels(mask_to_grid(mask, (grid, grid)),
                                sanitize_label(text))
        for name, encode in FORMATS:
            ids = tokenizer(encode(labels), add_special_tokens=False)
            counts[name].append(len(ids.input_ids))
    return {name: np.asarray(v) for name, v in counts.items()}


def format_table(grid: int, counts: Dict[str, np.ndarray]) -> str:
    """A markdown table: mean/median/max tokens and the cut vs full."""
    full = counts['full descriptors'].mean()
    lines = [
        f'\n{grid}x{grid} grid, {len(counts["R-RLE"])} masks',
        '| format | mean tokens | median | max | reduction vs full |',
        '|---|---|---|---|---|',
    ]
    for name, values in counts.items():
        cut = 100.0 * (1 - values.mean() / full)
        lines.append(f'| {name} | {values.mean():.1f} | '
                     f'{np.median(values):.0f} | {values.max()} | '
                     f'{cut:.1f}% |')
    return '\n'.join(lines)


def load_masks(args):
    """GT masks and expressions of the split, one per expression."""
    from mmrefseg.datasets.transforms import LoadRefMasks
    from mmrefseg.registry import DATASETS
    if args.dataset == 'synthrefcoco' and not osp.isfile(
            osp.join(args.data_root, args.dataset, 'instances.json')):
        from mmrefseg.datasets.synthetic import generate_synthetic_refer
        print(f'Generating the synthetic dataset under {args.data_root} ...')
        generate_synthetic_refer(args.data_root, 2000, 200, 200, seed=0)
    kwargs = dict(indices=args.max_samples) if args.max_samples else {}
    dataset = DATASETS.build(
        dict(type='RefCOCODataset', data_root=args.data_root,
             dataset_name=args.dataset, split_by=args.split_by,
             split=args.split, test_mode=True,
             data_prefix=dict(img_path=args.img_prefix),
             pipeline=[LoadRefMasks()], **kwargs))
    masks, texts = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        masks.append(sample['gt_masks'][0])
        texts.append(sample['texts'][0])
    return masks, texts


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmrefseg.utils.tokenizer import build_tokenizer
    tok_cfg = dict(type='tiny_bpe', vocab_size=args.vocab_size) \
        if args.tokenizer == 'tiny_bpe' else args.tokenizer
    tokenizer = build_tokenizer(tok_cfg)
    start = time.time()
    masks, texts = load_masks(args)
    print(f'{args.dataset} {args.split}: {len(masks)} expressions, '
          f'tokenizer {args.tokenizer}')
    for grid in args.grid:
        print(format_table(grid, count_tokens(masks, texts, grid,
                                              tokenizer)))
    print(f'\n({time.time() - start:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
