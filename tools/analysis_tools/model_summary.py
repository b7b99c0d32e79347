# Copyright (c) mmrefseg contributors.
"""Build a config's model (on the meta device by default) and count params.

    python tools/analysis_tools/model_summary.py \
        configs/mllmseg/internvl8b_refcoco.py

With ``--meta`` (default) nothing is allocated and no weights are read: the
backbone is built from the architecture written in the config. If the
config's tokenizer directory is not on disk, the tiny built-in tokenizer
stands in; vocabulary sizes then come from the config, so every count is
exact except the rows of tokens the real tokenizer would add.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import torch
from mmengine.config import Config, DictAction

from mmrefseg.registry import MODELS
from mmrefseg.utils import register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--no-meta', action='store_true',
                        help='build on CPU with real memory (and weights)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def summarize(model: torch.nn.Module) -> 'OrderedDict[str, tuple]':
    """(total, trainable) parameter counts per top-level child."""
    rows = OrderedDict()
    for name, child in model.named_children():
        params = list(child.parameters())
        rows[name] = (sum(p.numel() for p in params),
                      sum(p.numel() for p in params if p.requires_grad))
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model
    backbone = model_cfg.backbone
    if not args.no_meta:
        backbone.pretrained = None
        tok = backbone.get('tokenizer')
        if isinstance(tok, str) and not osp.isdir(tok):
            print(f'(tokenizer {tok} not found: using the tiny stand-in)')
            backbone.tokenizer = dict(type='tiny_bpe', vocab_size=1024)
            vocab = backbone.config['text_config']['vocab_size']
            backbone.config['image_token_id'] = 5  # the stand-in's id
            assert vocab > 1024
    with torch.device('meta' if not args.no_meta else 'cpu'):
        model = MODELS.build(model_cfg)
    rows = summarize(model)
    print(f'\n{"module":<20}{"params":>16}{"trainable":>16}')
    for name, (total, train) in rows.items():
        print(f'{name:<20}{total:>16,}{train:>16,}')
    total = sum(r[0] for r in rows.values())
    train = sum(r[1] for r in rows.values())
    print(f'{"total":<20}{total:>16,}{train:>16,}')
    heads = [n for n in ('neck', 'decode_head') if n in rows]
    if heads:
        count = sum(rows[n][0] for n in heads)
        print(f'\nsegmentation modules ({" + ".join(heads)}): {count:,} '
              f'({count / 1e6:.2f}M)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
