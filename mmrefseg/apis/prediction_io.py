# Copyright (c) mmrefseg contributors.
"""What the inferencer returns per image, and how it is written to disk.

One image with K phrases becomes a plain dict (numpy + Python types, no
tensors) that users can keep, print or dump:

.. code-block:: python

    dict(phrases=[str] * K,
         masks=bool ndarray [K, H, W],        # at the original image size
         scores=[float] * K,                  # see ``summarize_masks``
         no_target=[bool] * K,
         boxes=[[x1, y1, x2, y2]] * K,        # COCO pixel edges; 0 if empty
         areas=[int] * K,
         parse_status=[str | None] * K)       # Text4Seg's parser; else None

``write_prediction`` stores the picture, one PNG per phrase (0/255) and a
JSON file whose masks are COCO RLE (pycocotools), so a result can be read
back with ``pycocotools.mask.decode`` exactly.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch

from mmrefseg.evaluation.functional import mask_boxes


def masks_to_rles(masks: np.ndarray) -> List[dict]:
    """COCO RLE of each mask, JSON-ready (``counts`` as str).

    Args:
        masks (np.ndarray): (K, H, W) bool or 0/1.

    Returns:
        list[dict]: ``{'size': [H, W], 'counts': str}`` per mask.
    """
    rles = []
    for mask in np.asarray(masks):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rles.append(dict(size=[int(v) for v in rle['size']],
                         counts=rle['counts'].decode('ascii')))
    return rles


def rles_to_masks(rles: Sequence[dict]) -> np.ndarray:
    """Inverse of :func:`masks_to_rles`: (K, H, W) bool."""
    masks = [mask_utils.decode(dict(size=r['size'],
                                    counts=r['counts'].encode('ascii')))
             for r in rles]
    return np.stack(masks).astype(bool) if masks else np.zeros((0, 0, 0),
                                                               bool)


def summarize_masks(phrases: Sequence[str],
                    masks: np.ndarray,
                    probs: Optional[np.ndarray] = None,
                    no_target: Optional[Sequence[bool]] = None,
                    parse_status: Optional[Sequence[Optional[str]]] = None
                    ) -> Dict[str, object]:
    """The per-image prediction dict (module docstring).

    Args:
        phrases (Sequence[str]): K phrases.
        masks (np.ndarray): (K, H, W) predicted masks.
        probs (np.ndarray, optional): (K, H, W) foreground probabilities.
            A phrase's score is the mean probability over its predicted
            mask (how sure the model is of the pixels it picked); without
            probabilities (Text4Seg writes hard cells) it is 1.0 for a
            non-empty mask.
        no_target (Sequence[bool], optional): The model's no-target
            decision; defaults to "the mask is empty".
        parse_status (Sequence[str], optional): Text4Seg's parse status.

    Returns:
        dict: See the module docstring.
    """
    masks = np.asarray(masks).astype(bool)
    k = len(phrases)
    if masks.shape[0] != k:
        raise ValueError(f'{masks.shape[0]} masks for {k} phrases')
    areas = masks.reshape(k, -1).sum(1)
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64).reshape(masks.shape)
        sums = (probs * masks).reshape(k, -1).sum(1)
        scores = np.where(areas > 0, sums / np.maximum(areas, 1), 0.0)
    else:
        scores = (areas > 0).astype(np.float64)
    if no_target is None:
        no_target = [bool(a == 0) for a in areas]
    boxes = mask_boxes(torch.from_numpy(masks), edges=True)
    return dict(phrases=list(phrases),
                masks=masks,
                scores=[float(s) for s in scores],
                no_target=[bool(v) for v in no_target],
                boxes=boxes.tolist(),
                areas=[int(a) for a in areas],
                parse_status=list(parse_status) if parse_status is not None
                else [None] * k)


def write_prediction(out_dir: str, stem: str, prediction: dict,
                     picture: Optional[np.ndarray] = None) -> Dict[str, str]:
    """Write a prediction under ``out_dir``.

    Layout::

        out_dir/vis/<stem>.png            the picture (if given)
        out_dir/masks/<stem>_<k>.png      phrase k's mask, 0/255
        out_dir/preds/<stem>.json         phrases, RLE masks, scores, boxes

    Args:
        out_dir (str): Output folder (created).
        stem (str): File stem, usually the image's.
        prediction (dict): From :func:`summarize_masks`.
        picture (np.ndarray, optional): (H, W, 3) RGB picture.

    Returns:
        dict: Paths written, by kind ('vis', 'json', 'mask_<k>').
    """
    paths = {}
    for sub in ('masks', 'preds') + (('vis', ) if picture is not None else
                                       ()):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    if picture is not None:
        paths['vis'] = osp.join(out_dir, 'vis', f'{stem}.png')
        cv2.imwrite(paths['vis'], cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    for k, mask in enumerate(prediction['masks']):
        path = osp.join(out_dir, 'masks', f'{stem}_{k}.png')
        cv2.imwrite(path, mask.astype(np.uint8) * 255)
        paths[f'mask_{k}'] = path
    record = {key: value for key, value in prediction.items()
              if key != 'masks'}
    record['masks'] = masks_to_rles(prediction['masks'])
    paths['json'] = osp.join(out_dir, 'preds', f'{stem}.json')
    with open(paths['json'], 'w') as f:
        json.dump(record, f, indent=1)
    return paths
