# Copyright (c) mmrefseg contributors.
"""Convert a released SELF1E checkpoint for mmrefseg's RefSegmentor.

Writes ``OUT/hf/`` (the native InternVL3 backbone; ``[SEG]``/``[SEGT]``
registered in the base tokenizer at the checkpoint's last two rows),
``OUT/mmrefseg.pth`` (Self1EHead's three MLPs in an MMEngine checkpoint)
and ``OUT/cfg_options.txt`` (the overrides that keep the released
behaviour, also printed).

SELF1E checkpoints ship no tokenizer: pass the base model directory.

Example::

    python tools/model_converters/self1e_to_mmrefseg.py \\
        checkpoints/SELF1E-2B checkpoints/SELF1E-2B-mmrefseg \\
        --tokenizer-from checkpoints/InternVL3-2B
    python tools/test.py configs/self1e/released/self1e_2b.py \\
        checkpoints/SELF1E-2B-mmrefseg/mmrefseg.pth
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import add_common_args, dtype_of  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', nargs='?', help='released SELF1E directory')
    parser.add_argument('out', nargs='?', help='output directory')
    parser.add_argument('--print-mapping', action='store_true',
                        help='print the key mapping table and exit')
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not args.print_mapping and not (args.src and args.out):
        parser.error('src and out are required')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.print_mapping:
        from mmrefseg.converters.key_mapping import mapping_table
        from mmrefseg.converters.self1e import SELF1E_RULES as rules
        print(mapping_table(rules))
        return
    from mmrefseg.converters.release import convert_release
    from mmrefseg.converters.self1e import self1e_spec
    from mmrefseg.converters.weights_io import parse_size
    convert_release(
        self1e_spec(), args.src, args.out,
        tokenizer_src=args.tokenizer_from, dtype=dtype_of(args.dtype),
        max_shard_bytes=parse_size(args.max_shard_size),
        log=lambda msg: print(msg, flush=True))


if __name__ == '__main__':
    main()
