# Copyright (c) mmrefseg contributors.
"""Sigmoid focal loss for binary masks, averaged per mask."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrefseg.registry import MODELS


@MODELS.register_module()
class MaskFocalLoss(nn.Module):
    """Sigmoid focal loss: per-pixel mean of each mask, then mean over masks.

    ``loss = alpha_t * (1 - p_t)**gamma * BCE(p, y)`` with ``p = sigmoid(x)``,
    ``p_t = p*y + (1-p)*(1-y)``, ``alpha_t = alpha*y + (1-alpha)*(1-y)``.

    Why not ``mmdet.FocalLoss``: its standard path gives the same numbers
    (checked in the tests), but it cannot express the released MLLMSeg loss,
    which fed the decoder's *probabilities* to ``BCE_with_logits`` (a double
    sigmoid) while computing ``p_t`` from the probabilities once.
    ``legacy_double_sigmoid=True`` reproduces that:
    ``BCE_with_logits(p, y) * alpha_t * (1 - p_t)**gamma``. Use it only to
    keep training the released weights under their original objective.

    Args:
        alpha (float): Weight of the positive class. Default: 0.25.
        gamma (float): Focusing exponent. Default: 2.0.
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        legacy_double_sigmoid (bool): Reproduce the released double sigmoid
            in the cross-entropy term. Default: False.
        loss_name (str): Key of this loss in the head's loss dict.
    """

    def __init__(self,
                 alpha: float = 0.25,
                 gamma: float = 2.0,
                 loss_weight: float = 1.0,
                 legacy_double_sigmoid: bool = False,
                 loss_name: str = 'loss_focal') -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.loss_weight = loss_weight
        self.legacy_double_sigmoid = legacy_double_sigmoid
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Mask logits, shape (Q, ...).
            target (Tensor): Binary masks of the same shape.
            weight (Tensor, optional): Per-mask weights, shape (Q,); the
                result is then ``sum(weight * per_mask) / Q``.

        Returns:
            Tensor: Scalar loss.
        """
        target = target.type_as(pred)
        prob = pred.sigmoid()
        ce_input = prob if self.legacy_double_sigmoid else pred
        ce = F.binary_cross_entropy_with_logits(
            ce_input, target, reduction='none')
        p_t = prob * target + (1 - prob) * (1 - target)
        alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        loss = (alpha_t * (1 - p_t).pow(self.gamma) * ce).flatten(1).mean(1)
        if weight is not None:
            loss = loss * weight
        return self.loss_weight * loss.mean()
