# Copyright (c) mmrefseg contributors.
"""Mask losses of low-resolution logits against full-size GT masks."""
import re
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def mask_loss_key(loss: nn.Module) -> str:
    """``loss.loss_name`` if defined, else e.g. DiceLoss -> ``loss_dice``."""
    name = getattr(loss, 'loss_name', None)
    if name:
        return name
    stem = re.sub(r'Loss$', '', type(loss).__name__)
    return 'loss_' + re.sub(r'(?<!^)(?=[A-Z])', '_', stem).lower()


def resized_mask_losses(losses: Sequence[nn.Module], mask_logits: Tensor,
                        gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
    """Each loss averaged over masks, logits resized to each GT's size.

    The logits are bilinearly resized (align_corners=False) to the size of
    their GT mask, so masks of different sizes can share a batch, and scored
    in float32 (sums over a full-size mask are too coarse in bf16). Every
    mask counts once whatever its size. Masks of one size (several
    expressions of an image) are resized and scored in one call instead of
    query by query, whose backward writes a full-size zero gradient for
    every query.

    Args:
        losses (Sequence[nn.Module]): Called as ``loss(logits[n, 1, H, W],
            target[n, 1, H, W])``; each must return the mean over the n
            masks (mmdet's ``CrossEntropyLoss``/``DiceLoss``,
            :class:`MaskFocalLoss`).
        mask_logits (Tensor): Shape (Q, 1, h, w).
        gt_masks (Sequence[Tensor]): Q binary masks, each (H_q, W_q).

    Returns:
        dict[str, Tensor]: One float32 scalar per :func:`mask_loss_key`
        (losses sharing a name are summed); zeros that keep ``mask_logits``
        in the graph when Q is 0.

    Raises:
        ValueError: If the numbers of logits and GT masks differ.
    """
    if len(gt_masks) != mask_logits.shape[0]:
        raise ValueError(f'{mask_logits.shape[0]} predicted masks but '
                         f'{len(gt_masks)} GT masks')
    if len(gt_masks) == 0:
        zeros = [mask_logits.float().sum() * 0 for _ in losses]
        return _by_name(losses, zeros)
    totals = [
        mask_logits.new_zeros((), dtype=torch.float32) for _ in losses
    ]
    groups: Dict[tuple, List[int]] = {}
    for q, gt in enumerate(gt_masks):
        groups.setdefault(tuple(gt.shape[-2:]), []).append(q)
    for size, idx in groups.items():
        index = torch.as_tensor(idx, device=mask_logits.device)
        logits = F.interpolate(
            mask_logits.index_select(0, index),
            size=size,
            mode='bilinear',
            align_corners=False).float()  # (n, 1, H, W)
        target = torch.stack([gt_masks[q] for q in idx]).to(
            logits.device, torch.float32).view_as(logits)
        for i, loss in enumerate(losses):
            # A group's mean times its size adds up to the sum over masks.
            totals[i] = totals[i] + loss(logits, target) * len(idx)
    return _by_name(losses, [total / len(gt_masks) for total in totals])


def _by_name(losses: Sequence[nn.Module],
             values: List[Tensor]) -> Dict[str, Tensor]:
    named: Dict[str, Tensor] = {}
    for loss, value in zip(losses, values):
        name = mask_loss_key(loss)
        named[name] = named[name] + value if name in named else value
    return named
