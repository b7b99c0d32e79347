# Copyright (c) mmrefseg contributors.
"""Write the synthetic REFER-format dataset used for smoke training/tests.

Example::

    python tools/dataset_converters/generate_synthetic_refer.py \
        --out data/synthetic --num-train 2000 --num-val 200 --num-test 200 \
        --seed 0

Then use ``data_root='data/synthetic'``,
``data_prefix=dict(img_path='images/synthetic')`` with
``RefCOCODataset(dataset_name='synthrefcoco', split_by='unc')`` or
``GRefCOCODataset(dataset_name='grefcoco')``.
"""
import argparse
import sys
import time

from mmrefseg.datasets.synthetic import generate_synthetic_refer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a synthetic referring segmentation dataset in '
        'the REFER (refs(unc).p + instances.json) and gRefCOCO layouts.')
    parser.add_argument('--out', default='data/synthetic', help='output root')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument(
        '--num-test',
        type=int,
        default=200,
        help='test images, split in halves into testA/testB')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--img-ext', choices=['.jpg', '.png'], default='.jpg')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    step = max(1, (args.num_train + args.num_val + args.num_test) // 20)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(
                f'\r[{done}/{total}] images '
                f'{time.perf_counter() - start:.1f}s',
                end='',
                flush=True)

    summary = generate_synthetic_refer(
        args.out,
        num_train_images=args.num_train,
        num_val_images=args.num_val,
        num_test_images=args.num_test,
        seed=args.seed,
        img_ext=args.img_ext,
        progress=progress)
    print(file=sys.stdout)
    print(f'wrote {summary["images"]} images, {summary["annotations"]} '
          f'objects to {args.out} in {time.perf_counter() - start:.1f}s')
    print(f'  synthrefcoco refs per split: {summary["refs"]} '
          f'({summary["sentences"]} sentences)')
    print(f'  grefcoco refs per split:     {summary["grefs"]} '
          f'({summary["gsentences"]} sentences)')
    print(f'  image prefix: {summary["img_prefix"]}')


if __name__ == '__main__':
    main()
