# Copyright (c) mmrefseg contributors.
"""Convert a folder of (image, mask PNG, phrases) triplets to refseg JSON
Lines.

Layout (see mmrefseg/datasets/refseg_format/from_mask_folder.py)::

    my_data/images/0002.jpg
    my_data/masks/0002__cat.png   my_data/phrases/0002__cat.txt
    my_data/masks/0002__dog.png   my_data/phrases/0002__dog.txt
                                  my_data/phrases/0002__zebra.txt  (no target)

Example::

    python tools/dataset_converters/mask_folder_to_refseg_jsonl.py my_data \
        --out my_data/train.jsonl --split train

Paths in the file are relative to the folder: use it as ``data_root``.
"""
import argparse
import glob
import os.path as osp
import time

from mmrefseg.datasets.refseg_format import (
    dump_refseg_jsonl,
    mask_folder_to_records,
)
from mmrefseg.datasets.refseg_format.progress import progress_callback


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='(image, mask PNG, phrase .txt) triplets -> refseg JSON '
        'Lines (one record per phrase file).')
    parser.add_argument('root', help='folder holding images/ masks/ phrases/')
    parser.add_argument('--images-dir', default='images')
    parser.add_argument('--masks-dir', default='masks')
    parser.add_argument('--phrases-dir', default='phrases')
    parser.add_argument('--split', default=None,
                        help='split name written in every record')
    parser.add_argument('--embed-rle', action='store_true',
                        help='write masks as COCO RLE instead of PNG paths '
                        '(a self-contained file)')
    parser.add_argument('--out', required=True, help='output .jsonl')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    total = len(glob.glob(osp.join(args.root, args.phrases_dir, '*.txt')))
    progress = progress_callback(total)
    records = mask_folder_to_records(
        args.root, images_dir=args.images_dir, masks_dir=args.masks_dir,
        phrases_dir=args.phrases_dir, split=args.split,
        embed_rle=args.embed_rle, progress=progress)
    count = dump_refseg_jsonl(records, args.out)
    print(f'\nwrote {count} records to {args.out} in '
          f'{time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
