# Copyright (c) mmrefseg contributors.
import torch

from mmrefseg.models.utils import internvl_pixel_unshuffle
from mmrefseg.registry import MODELS


def test_pixel_unshuffle_inverts_internvl_pixel_shuffle(tiny_backbone_cfg):
    hf_model = MODELS.build(tiny_backbone_cfg).hf.model
    x = torch.randn(2, 6, 10, 3)  # non-square grid
    shuffled = hf_model.pixel_shuffle(x, scale_factor=0.5)
    assert shuffled.shape == (2, 3, 5, 12)
    assert torch.equal(internvl_pixel_unshuffle(shuffled), x)
    # Chunk k = 2*dr + dc holds sub-pixel (dr, dc).
    assert torch.equal(shuffled[0, 1, 2, 9:12], x[0, 3, 5])
