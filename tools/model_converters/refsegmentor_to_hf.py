# Copyright (c) mmrefseg contributors.
"""Export a trained RefSegmentor as one folder: native InternVL + heads.

The folder holds the backbone as a native transformers InternVL (LoRA
merged into the base weights, the trained rows of added tokens such as
``[SEG]``/``[REJ]`` kept) with its tokenizer, the neck/head weights
(``mmrefseg_heads.safetensors``) and the config rewritten to read the
folder (``mmrefseg_config.py``)::

    python tools/model_converters/refsegmentor_to_hf.py \\
        configs/self1e/self1e_tiny_synth.py \\
        work_dirs/self1e_tiny_synth/iter_1700.pth exports/self1e_tiny

The folder loads with ``InternVLForConditionalGeneration.from_pretrained``
and ``AutoTokenizer.from_pretrained``, as ``InternVLBackbone(pretrained=...)``
(e.g. to fine-tune another head from it), and whole with
``mmrefseg.converters.load_exported_model(folder)``.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import DTYPES, dtype_of  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='its checkpoint (iter_N.pth)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--dtype', choices=sorted(DTYPES), default='keep',
        help="backbone weights' dtype (default: the dtype it runs in)")
    parser.add_argument('--max-shard-size', default='2GB',
                        help='backbone shard size, e.g. 2GB, 500MB')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default=None,
        metavar='KEY=VALUE',
        help='override config entries before building the model')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmrefseg.converters import export_refsegmentor
    from mmrefseg.converters.weights_io import parse_size
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return export_refsegmentor(
        cfg, args.checkpoint, args.out_dir, dtype=dtype_of(args.dtype),
        max_shard_bytes=parse_size(args.max_shard_size),
        log=lambda msg: print(msg, flush=True))


if __name__ == '__main__':
    main()
