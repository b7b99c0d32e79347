# Copyright (c) mmrefseg contributors.
"""Convert REFER / gRefCOCO files to the refseg JSON Lines format.

Example (the synthetic dataset of generate_synthetic_refer.py)::

    python tools/dataset_converters/refer_to_refseg_jsonl.py \
        --refs data/synthetic/synthrefcoco/'refs(unc).p' \
        --instances data/synthetic/synthrefcoco/instances.json \
        --img-prefix images/synthetic --out data/synthetic/synth.jsonl

Image paths are written as ``<img-prefix>/<file_name>``: use the REFER root
(``data/synthetic``) as the dataset's ``data_root``. ``.p`` files are read
with the restricted unpickler (no code in them can run).
"""
import argparse
import os
import os.path as osp
import time

from mmrefseg.datasets.refer_io import load_refs_file
from mmrefseg.datasets.refseg_format import dump_refseg_jsonl, refer_to_records
from mmrefseg.datasets.refseg_format.progress import progress_callback


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='REFER refs(.p) / gRefCOCO grefs(.json) + '
        'instances.json -> refseg JSON Lines (one record per ref).')
    parser.add_argument('--refs', required=True, help='refs(<splitBy>).p or '
                        'grefs(<splitBy>).json')
    parser.add_argument('--instances', required=True,
                        help='the COCO instances.json of the refs')
    parser.add_argument('--img-prefix', default='',
                        help='folder written before every image file name')
    parser.add_argument('--splits', nargs='+', default=None,
                        help='only these splits (default: all)')
    parser.add_argument('--out', required=True, help='output .jsonl')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    total = len(load_refs_file(args.refs))
    progress = progress_callback(total)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    records = refer_to_records(
        args.refs, args.instances, img_prefix=args.img_prefix,
        splits=args.splits, progress=progress)
    count = dump_refseg_jsonl(records, args.out)
    print(f'\nwrote {count} records to {args.out} in '
          f'{time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
