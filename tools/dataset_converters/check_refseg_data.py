# Copyright (c) mmrefseg contributors.
"""Validate a refseg JSON Lines file before training.

Reports missing/unreadable images, missing/unreadable/empty masks, masks or
declared sizes that differ from the image, duplicate ids, empty phrases and
phrases longer than the model allows, as a summary table plus one line per
problem (line number, id, kind, reason). Exit code 1 when anything is wrong.

Examples::

    # phrase limit derived from a model config (tokenizer + context length)
    python tools/dataset_converters/check_refseg_data.py my_data/train.jsonl \
        --data-root my_data --config configs/custom/mllmseg_tiny_custom.py
    # or a fixed limit (tokens of --tokenizer, else whitespace words)
    python tools/dataset_converters/check_refseg_data.py my_data/train.jsonl \
        --data-root my_data --max-tokens 40
"""
import argparse
import sys

from mmengine.config import Config

from mmrefseg.datasets.refseg_format import (
    RefSegChecker,
    phrase_budget_from_config,
)
from mmrefseg.datasets.refseg_format.progress import progress_callback
from mmrefseg.utils.tokenizer import build_tokenizer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check a refseg JSON Lines file (exit code 1 on errors).')
    parser.add_argument('file', help='the .jsonl file')
    parser.add_argument('--data-root', default='',
                        help="the dataset's data_root")
    parser.add_argument('--img-prefix', default='',
                        help="data_prefix.img_path (relative to data-root)")
    parser.add_argument('--mask-prefix', default='',
                        help="data_prefix.mask_path (relative to data-root)")
    parser.add_argument('--config', default=None,
                        help='model config giving the tokenizer and the '
                        'context length of the phrase limit')
    parser.add_argument('--tokenizer', default=None,
                        help='tokenizer directory for --max-tokens (default: '
                        "the config's, else whitespace words)")
    parser.add_argument('--max-tokens', type=int, default=None,
                        help='phrase limit (overrides the config-derived one)')
    parser.add_argument('--no-decode-images', action='store_true',
                        help='read only image headers (faster, misses '
                        'truncated files)')
    parser.add_argument('--max-errors-shown', type=int, default=200)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    tokenizer, max_tokens = None, args.max_tokens
    if args.config:
        cfg = Config.fromfile(args.config)
        budget = phrase_budget_from_config(cfg)
        tokenizer = build_tokenizer(budget.tokenizer_cfg,
                                    budget.extra_special_tokens)
        print(f'phrase limit from {args.config}: {budget.explanation}')
        if max_tokens is None:
            max_tokens = budget.max_tokens
    if args.tokenizer:
        tokenizer = build_tokenizer(args.tokenizer)
    checker = RefSegChecker(
        data_root=args.data_root, img_prefix=args.img_prefix,
        mask_prefix=args.mask_prefix, tokenizer=tokenizer,
        max_tokens=max_tokens, decode_images=not args.no_decode_images)
    with open(args.file, 'rb') as f:
        lines = sum(1 for _ in f)
    progress = progress_callback(lines)
    report = checker.check_file(args.file,
                                progress=progress)
    print()
    print(report.summary_table())
    for issue in report.issues[:args.max_errors_shown]:
        print(issue)
    hidden = len(report.issues) - args.max_errors_shown
    if hidden > 0:
        print(f'... and {hidden} more')
    print('OK' if report.ok else f'FAILED: {len(report.issues)} error(s)')
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
