# Copyright (c) mmrefseg contributors.
from .mask_focal_loss import MaskFocalLoss

__all__ = ['MaskFocalLoss']
