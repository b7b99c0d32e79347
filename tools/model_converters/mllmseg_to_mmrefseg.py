# Copyright (c) mmrefseg contributors.
"""Convert a released MLLMSeg checkpoint for mmrefseg's RefSegmentor.

Writes ``OUT/hf/`` (the native InternVL backbone with the released
tokenizer and ``[SEG]``/``[REJ]`` rows), ``OUT/mmrefseg.pth`` (the DSFF
neck and light mask decoder, BatchNorm statistics included, in an MMEngine
checkpoint) and ``OUT/cfg_options.txt`` (the overrides that keep the
released behaviour, also printed).

Example::

    python tools/model_converters/mllmseg_to_mmrefseg.py \\
        checkpoints/MLLMSeg_InternVL2_5_8B_RES \\
        checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg
    OUT=checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg
    python tools/test.py configs/mllmseg/internvl8b_refcoco.py \\
        $OUT/mmrefseg.pth --cfg-options $(cat $OUT/cfg_options.txt)

The configs in ``configs/mllmseg/released/`` have these overrides (and
the converted tokenizer in their pipelines) written in; with ``OUT`` as
above no ``--cfg-options`` is needed::

    python tools/test.py \\
        configs/mllmseg/released/mllmseg_internvl2_5_8b_res.py \\
        $OUT/mmrefseg.pth
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import add_common_args, dtype_of  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', nargs='?',
                        help='released MLLMSeg directory (merged, no '
                        'LoRA): config.json, weights, tokenizer')
    parser.add_argument('out', nargs='?', help='output directory')
    parser.add_argument('--print-mapping', action='store_true',
                        help='print the key mapping table and exit')
    parser.add_argument('--num-heads', type=int, default=8,
                        help='attention heads of the decoder layers (not '
                        'stored in the checkpoint; the release uses 8)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not args.print_mapping and not (args.src and args.out):
        parser.error('src and out are required')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.print_mapping:
        from mmrefseg.converters.key_mapping import mapping_table
        from mmrefseg.converters.mllmseg import MLLMSEG_RULES as rules
        print(mapping_table(rules))
        return
    from mmrefseg.converters.mllmseg import mllmseg_spec
    from mmrefseg.converters.release import convert_release
    from mmrefseg.converters.weights_io import parse_size
    convert_release(
        mllmseg_spec(num_heads=args.num_heads), args.src, args.out,
        tokenizer_src=args.tokenizer_from, dtype=dtype_of(args.dtype),
        max_shard_bytes=parse_size(args.max_shard_size),
        log=lambda msg: print(msg, flush=True))


if __name__ == '__main__':
    main()
