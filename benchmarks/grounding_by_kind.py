# Copyright (c) mmrefseg contributors.
"""Which expressions does a checkpoint ground? Synthetic val IoU per kind.

Splits the synthetic REFER val expressions by template family (colour,
shape, colour+shape, position, size; see
:func:`mmrefseg.datasets.synthetic_language.expression_kind`) and prints,
per family, the cIoU and mean IoU with the target, Pr@0.5, and the mean IoU
of the prediction with the *best-matching* object of the image. The last
column separates mask quality from selection: a high best-object IoU with a
low target IoU means a well-drawn mask of the wrong object. A line then
counts the predictions that mark the target, another object (the one they
overlap most) or nothing. For text heads with an answer grid (Text4Seg) a
last table splits cIoU and the grid oracle by how many cells the target
keeps in the answer grid.

    python benchmarks/grounding_by_kind.py \
        configs/mllmseg/mllmseg_hybrid_tiny_synth.py \
        work_dirs/x/iter_1500.pth \
        --val-samples 400
"""
import os

# Idle OpenMP threads sleep instead of spinning, so other busy processes
# slow this one down in proportion instead of several-fold (set before
# torch loads; docs/experiments.md, "CPU threads").
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmrefseg.datasets.refer_io import segmentation_to_mask
from mmrefseg.datasets.synthetic_language import (
    EXPRESSION_KINDS,
    expression_kind,
)
from mmrefseg.utils import register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--val-samples', type=int, default=400,
                        help='first N val samples (0 = all)')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def object_masks(data_root: str, dataset_name: str):
    """image id -> COCO segmentations of all objects of that image."""
    path = osp.join(data_root, dataset_name, 'instances.json')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: this benchmark reads the synthetic dataset '
            '(<data_root>/<dataset_name>/instances.json)')
    with open(path) as f:
        coco = json.load(f)
    objects: Dict[int, List[list]] = defaultdict(list)
    for ann in coco['annotations']:
        objects[ann['image_id']].append(ann['segmentation'])
    return objects


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class KindStats:
    """Per-kind sums of intersection/union and lists of IoUs."""

    def __init__(self) -> None:
        # kind -> [intersection, union, [target IoU], [best-object IoU],
        #          answers the decoder had to repair (text heads only)]
        self.stats = defaultdict(lambda: [0, 0, [], [], 0])
        self.has_parse_status = False
        # Which object each prediction overlaps most: the target, another
        # object of the image, or none (an empty or off-object mask).
        self.selection = {'target': 0, 'other object': 0, 'nothing': 0}

    def add(self, sample, segmentations: List[list]) -> None:
        """Score one predicted ``RefSegDataSample`` with one expression.

        Args:
            sample (RefSegDataSample): With ``pred_masks``, ``gt_masks``
                and ``texts``.
            segmentations (list): COCO segmentations of every object of
                the sample's image.
        """
        texts = sample.texts
        if len(texts) != 1:
            raise ValueError(
                f'expected one expression per sample, got {texts}')
        pred = sample.pred_masks[0].cpu().numpy() > 0
        gt = sample.gt_masks[0].cpu().numpy() > 0
        h, w = gt.shape
        objects = [segmentation_to_mask(seg, h, w) > 0
                   for seg in segmentations]
        with_pred = [iou(pred, obj) for obj in objects]
        best = max(with_pred, default=0.0)
        if best <= 0 or not pred.any():
            self.selection['nothing'] += 1
        else:
            target = int(np.argmax([iou(gt, obj) for obj in objects]))
            picked = int(np.argmax(with_pred))
            self.selection['target' if picked == target
                           else 'other object'] += 1
        entry = self.stats[expression_kind(texts[0])]
        entry[0] += int(np.logical_and(pred, gt).sum())
        entry[1] += int(np.logical_or(pred, gt).sum())
        entry[2].append(iou(pred, gt))
        entry[3].append(best)
        # Text heads (Text4Seg) say whether the answer parsed cleanly.
        status = sample.get('parse_status')
        if status is not None:
            self.has_parse_status = True
            entry[4] += int(status[0] != 'ok')

    def rows(self) -> List[tuple]:
        """(kind, #expr, cIoU, mIoU, Pr@0.5, best-object mIoU, parse
        fail) in percent, one row per kind seen plus ``'all'``."""
        kinds = [k for k in EXPRESSION_KINDS if k in self.stats]
        out = []
        for kind in kinds + ['all']:
            group = kinds if kind == 'all' else [kind]
            inter = sum(self.stats[k][0] for k in group)
            union = sum(self.stats[k][1] for k in group)
            ious = np.concatenate([self.stats[k][2] for k in group])
            bests = np.concatenate([self.stats[k][3] for k in group])
            failed = sum(self.stats[k][4] for k in group)
            out.append((kind, len(ious),
                        100 * inter / union if union else float('nan'),
                        100 * ious.mean(), 100 * (ious > 0.5).mean(),
                        100 * bests.mean(), 100 * failed / len(ious)))
        return out

    def selection_line(self) -> str:
        """Shares of predictions marking the target, another object or
        nothing (the object each overlaps most)."""
        n = max(sum(self.selection.values()), 1)
        return 'prediction marks: ' + ', '.join(
            f'{k} {100 * v / n:.1f}% ({v})'
            for k, v in self.selection.items())

    def table(self) -> str:
        parse = self.has_parse_status
        lines = ['| kind | #expr | cIoU | mIoU | Pr@0.5 | best-object mIoU |'
                 + (' parse fail % |' if parse else ''),
                 '|---|---|---|---|---|---|' + ('---|' if parse else '')]
        for kind, n, ciou, miou, pr, best, fail in self.rows():
            lines.append(f'| {kind} | {n} | {ciou:.1f} | {miou:.1f} | '
                         f'{pr:.1f} | {best:.1f} |'
                         + (f' {fail:.1f} |' if parse else ''))
        return '\n'.join(lines)


def grid_oracle_mask(gt: np.ndarray, grid_hw) -> tuple:
    """The best mask an answer grid can paint: the GT mask taken to the
    grid (:func:`mmrefseg.codecs.mask_to_grid`) and nearest-upsampled back
    (:func:`mmrefseg.models.utils.nearest_upsample_grid`, as the head).

    Args:
        gt (np.ndarray): ``(H, W)`` mask; values > 0 are foreground.
        grid_hw (tuple[int, int]): Answer grid ``(h, w)``.

    Returns:
        tuple: the ``(h, w)`` bool grid and the ``(H, W)`` bool mask.
    """
    from mmrefseg.codecs import mask_to_grid
    from mmrefseg.models.utils import nearest_upsample_grid
    grid = mask_to_grid(gt, grid_hw)
    mask = nearest_upsample_grid(torch.from_numpy(grid), np.shape(gt))
    return grid, mask.numpy()


class GridCellStats:
    """cIoU of the answers and of the grid oracle, split by how many cells
    the target keeps in the answer grid (text heads, e.g. Text4Seg).

    The answer grid takes each cell's centre pixel (the reference's rule,
    :func:`mmrefseg.codecs.mask_to_grid`), so small targets keep one cell
    or none, and one cell off is an IoU of zero for them.

    Args:
        grid_hw (tuple[int, int]): The head's answer grid ``(h, w)``.
        cap (int): Targets with at least this many cells share a row.
    """

    def __init__(self, grid_hw, cap: int = 5) -> None:
        self.grid_hw = tuple(grid_hw)
        self.cap = cap
        # cells -> [n, oracle inter, oracle union, inter, union, empty]
        self.stats = defaultdict(lambda: [0, 0, 0, 0, 0, 0])

    def add(self, sample) -> None:
        pred = sample.pred_masks[0].cpu().numpy() > 0
        gt = sample.gt_masks[0].cpu().numpy() > 0
        grid, oracle = grid_oracle_mask(gt, self.grid_hw)
        entry = self.stats[min(int(grid.sum()), self.cap)]
        for i, value in enumerate(
                (1, (oracle & gt).sum(), (oracle | gt).sum(),
                 (pred & gt).sum(), (pred | gt).sum(), not pred.any())):
            entry[i] += int(value)

    def rows(self) -> List[tuple]:
        """(cells, #expr, oracle cIoU, cIoU, cIoU / oracle, empty %), one
        row per cell count seen plus ``'all'``; NaN where undefined."""
        out = []
        keys = sorted(self.stats)
        for key in keys + ['all']:
            group = keys if key == 'all' else [key]
            n, oi, ou, i, u, empty = (sum(self.stats[k][j] for k in group)
                                      for j in range(6))
            oracle = 100 * oi / ou if ou else float('nan')
            ciou = 100 * i / u if u else float('nan')
            ratio = 100 * ciou / oracle if oracle else float('nan')
            label = f'{key} or more' if key == self.cap else key
            out.append((label, n, oracle, ciou, ratio, 100 * empty / n))
        return out

    def table(self) -> str:
        h, w = self.grid_hw
        lines = [f'| target cells in the {h}x{w} answer | #expr | '
                 'oracle cIoU | cIoU | cIoU / oracle | empty answers % |',
                 '|---|---|---|---|---|---|']
        for label, n, oracle, ciou, ratio, empty in self.rows():
            share = '-' if np.isnan(ratio) else f'{ratio:.0f}%'
            lines.append(f'| {label} | {n} | {oracle:.1f} | {ciou:.1f} | '
                         f'{share} | {empty:.1f} |')
        return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join('work_dirs', 'grounding_by_kind')
    loader_cfg = cfg.val_dataloader
    if args.val_samples:
        loader_cfg.dataset['indices'] = args.val_samples
    ds = loader_cfg.dataset
    objects = object_masks(ds.data_root, ds.dataset_name)
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(args.checkpoint, map_location='cpu')
    model = runner.model.eval()
    loader = runner.build_dataloader(loader_cfg)

    stats = KindStats()
    grid_hw = getattr(model.decode_head, 'grid_hw', None)
    cells = GridCellStats(grid_hw) if grid_hw else None
    with torch.no_grad():
        for i, batch in enumerate(loader):
            for sample in model.val_step(batch):
                stats.add(sample, objects[sample.metainfo['img_id']])
                if cells is not None:
                    cells.add(sample)
            print(f'\r{i + 1}/{len(loader)} batches', end='', flush=True,
                  file=sys.stderr)
    print(file=sys.stderr)
    print(stats.table())
    print('\n' + stats.selection_line())
    if cells is not None:
        print('\n' + cells.table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
