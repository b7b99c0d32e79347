# Copyright (c) mmrefseg contributors.
"""Convert an InternVL chat checkpoint to the native transformers layout.

Covers InternVL2.5 / InternVL3 (InternViT + ``mlp1`` + InternLM2, Qwen2,
Qwen3 or Llama). InternLM2 becomes Llama (``wqkv`` unpacked), and its
remote-code SentencePiece tokenizer becomes a native fast tokenizer with
every token id kept. Weights are read shard by shard through
:mod:`mmrefseg.fileio` (safetensors, ``torch.load(weights_only=True)``, an
allow-list; anything else is refused, see docs/safety.md).

Example::

    python tools/model_converters/internvl_chat_to_hf.py \\
        checkpoints/InternVL2_5-8B checkpoints/InternVL2_5-8B-hf

    # the rename rules, as a Markdown table
    python tools/model_converters/internvl_chat_to_hf.py --print-mapping

The output loads with ``InternVLForConditionalGeneration.from_pretrained``
and ``AutoTokenizer.from_pretrained`` (no ``trust_remote_code``) and is what
``InternVLBackbone(pretrained=...)`` expects.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import add_common_args, dtype_of  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', nargs='?', help='InternVL chat checkpoint '
                        'directory (config.json + weights + tokenizer)')
    parser.add_argument('dst', nargs='?', help='output directory')
    parser.add_argument('--print-mapping', action='store_true',
                        help='print the key mapping tables and exit')
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not args.print_mapping and not (args.src and args.dst):
        parser.error('src and dst are required')
    return args


def print_mapping() -> None:
    from mmrefseg.converters.internvl_rules import (
        hf_llm_rules,
        internlm2_rules,
        vision_rules,
    )
    from mmrefseg.converters.key_mapping import mapping_table
    for title, rules in (('InternViT + mlp1', vision_rules(0)),
                         ('InternLM2 -> Llama', internlm2_rules(None)),
                         ('Qwen2 / Qwen3 / Llama', hf_llm_rules())):
        print(f'### {title}\n\n{mapping_table(rules)}\n')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.print_mapping:
        print_mapping()
        return
    from mmrefseg.converters.internvl_chat import convert_internvl_chat
    from mmrefseg.converters.weights_io import parse_size
    convert_internvl_chat(
        args.src, args.dst, dtype=dtype_of(args.dtype),
        max_shard_bytes=parse_size(args.max_shard_size),
        tokenizer_src=args.tokenizer_from,
        log=lambda msg: print(msg, flush=True))


if __name__ == '__main__':
    main()
