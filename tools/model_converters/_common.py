# Copyright (c) mmrefseg contributors.
"""Arguments shared by the model converter CLIs."""
import argparse
from typing import Optional

import torch

DTYPES = dict(keep=None, bfloat16=torch.bfloat16, float16=torch.float16,
              float32=torch.float32)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--dtype', choices=sorted(DTYPES), default='keep',
        help='cast floating weights (default: keep the stored dtype)')
    parser.add_argument(
        '--max-shard-size', default='2GB',
        help='output shard size, e.g. 2GB, 500MB (memory use is about one '
        'shard)')
    parser.add_argument(
        '--tokenizer-from', default=None, metavar='DIR',
        help='read the tokenizer from DIR instead of the source directory '
        '(checkpoints saved without tokenizer files)')


def dtype_of(name: str) -> Optional[torch.dtype]:
    return DTYPES[name]
