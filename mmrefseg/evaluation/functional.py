# Copyright (c) mmrefseg contributors.
"""Mask, box and ratio helpers shared by the metrics (torch + numpy only)."""
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_mask(data: Any) -> Tensor:
    """A [K, H, W] tensor from a tensor/ndarray mask ([H, W] means K = 1)."""
    mask = data if isinstance(data, Tensor) else torch.as_tensor(
        np.asarray(data))
    if mask.dim() == 2:
        mask = mask[None]
    if mask.dim() != 3:
        raise ValueError(f'expected masks of shape [K, H, W], got '
                         f'{tuple(mask.shape)}')
    return mask


def mask_boxes(masks: Tensor, edges: bool) -> np.ndarray:
    """Tight boxes of binary masks.

    Args:
        masks (Tensor): Bool masks [K, H, W].
        edges (bool): True for pixel-edge coordinates
            ``[x_min, y_min, x_max + 1, y_max + 1]`` (COCO), False for the
            inclusive pixel indices ``[x_min, y_min, x_max, y_max]``.

    Returns:
        np.ndarray: [K, 4] float64 xyxy boxes, all zeros for an empty mask.
    """
    num, height, width = masks.shape
    if num == 0:
        return np.zeros((0, 4))
    rows = masks.bool().any(dim=2)
    cols = masks.bool().any(dim=1)
    nonempty = rows.any(dim=1).cpu().numpy()
    rows, cols = rows.to(torch.uint8), cols.to(torch.uint8)
    # argmax returns the first maximal index: the first / last foreground
    # row and column without materialising index lists.
    y1 = rows.argmax(dim=1)
    y2 = height - 1 - rows.flip(1).argmax(dim=1)
    x1 = cols.argmax(dim=1)
    x2 = width - 1 - cols.flip(1).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).cpu().double().numpy()
    if edges:
        boxes[:, 2:] += 1
    boxes[~nonempty] = 0
    return boxes


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of [N, 4] xyxy boxes in continuous coordinates (0 when
    the union is empty)."""
    iw = np.clip(
        np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(
        np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(
        a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(
        b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def percent(num: float, den: float) -> float:
    """``100 * num / den``, NaN when undefined (``den == 0``).

    Args:
        num (float | Fraction): Numerator.
        den (float): Denominator.

    Returns:
        float: The ratio in percent, or NaN (a metric over no case).
    """
    return 100.0 * float(num) / den if den > 0 else float('nan')


def exact_sum(values) -> Fraction:
    """The exact sum of floats, as a fraction (a float is one).

    Per-expression IoUs are added this way so that the sums, and so the
    metrics, do not depend on how expressions were grouped into samples or
    on their order: one sample per expression and one per image give the
    same numbers to the last digit.

    Args:
        values (Iterable[float]): the terms.

    Returns:
        Fraction: their exact sum.
    """
    return sum((Fraction(v) for v in values), Fraction(0))
