# Copyright (c) mmrefseg contributors.
"""Segment the objects that phrases refer to in one image.

    python demo/image_demo.py IMAGE "the red circle" ["the blue square" ...] \
        --config CONFIG --checkpoint CHECKPOINT --out-file out.png

Writes a picture with every phrase's mask in its own colour and the
phrases in a legend, and prints, per phrase, whether the model found a
target, its box and its mask area. ``--out-dir`` also writes the mask PNGs
and a JSON file with COCO RLE masks.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

# Idle OpenMP threads sleep instead of spinning: on a busy CPU spinning
# threads starve each other (docs/experiments.md, threads).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('phrases', nargs='+', help='one or more phrases')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint file (random weights if omitted)')
    parser.add_argument('--out-file', default='demo_out.png',
                        help='where to write the picture')
    parser.add_argument('--out-dir', default='',
                        help='also write masks (PNG) and a JSON with RLE')
    parser.add_argument('--device', default=None,
                        help="'cpu', 'cuda', 'cuda:1' (default: cuda if "
                        'available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides of the config')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmrefseg.apis import RefSegInferencer
    inferencer = RefSegInferencer(model=args.config, weights=args.checkpoint,
                                  device=args.device,
                                  cfg_options=args.cfg_options)
    result = inferencer(args.image, args.phrases, return_vis=True,
                        out_dir=args.out_dir)
    pred = result['predictions'][0]
    import cv2
    cv2.imwrite(args.out_file,
                cv2.cvtColor(result['visualization'][0], cv2.COLOR_RGB2BGR))
    for k, phrase in enumerate(pred['phrases']):
        if pred['no_target'][k]:
            print(f'{phrase!r}: no target')
            continue
        if pred['areas'][k] == 0:
            print(f'{phrase!r}: empty mask (no pixel above the threshold)')
            continue
        box = ', '.join(f'{v:.0f}' for v in pred['boxes'][k])
        print(f'{phrase!r}: box [{box}], area {pred["areas"][k]} px, '
              f'score {pred["scores"][k]:.2f}')
    print(f'picture written to {osp.abspath(args.out_file)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
