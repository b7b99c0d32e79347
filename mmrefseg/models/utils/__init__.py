# Copyright (c) mmrefseg contributors.
from .dual_perception_mask import (
                                   dual_perception_mask,
                                   dual_perception_mask_for,
                                   to_additive_mask,
)
from .line_budget import LineBudget
from .nearest_upsample import nearest_source_index, nearest_upsample_grid
from .new_token_rows import NewTokenEmbedding, NewTokenLMHead
from .pixel_unshuffle import internvl_pixel_unshuffle
from .position_table import sincos_2d_position_table
from .resized_mask_losses import mask_loss_key, resized_mask_losses
from .sam_refiner import SamMaskRefiner

__all__ = [
    'LineBudget', 'NewTokenEmbedding', 'NewTokenLMHead', 'SamMaskRefiner',
    'dual_perception_mask', 'dual_perception_mask_for',
    'internvl_pixel_unshuffle', 'mask_loss_key', 'nearest_source_index',
    'nearest_upsample_grid', 'resized_mask_losses',
    'sincos_2d_position_table', 'to_additive_mask'
]
