# Copyright (c) mmrefseg contributors.
import random

import pytest
import torch
import torch.nn.functional as F

from mmrefseg.models.heads import Text4SegHead
from mmrefseg.models.utils import nearest_source_index, nearest_upsample_grid


def _float_reference(grid: torch.Tensor, size, dtype) -> torch.Tensor:
    """The reference's upsampling: legacy nearest on a float tensor."""
    out = F.interpolate(grid.to(dtype)[None, None], size=tuple(size),
                        mode='nearest')
    return out[0, 0]


def test_cell_borders_on_pixels_read_the_next_cell():
    # 12 rows at 495 px: rows 165 and 330 start cells 4 and 8 exactly.
    rows = nearest_source_index(12, 495)
    assert rows[164].item() == 3 and rows[165].item() == 4
    assert rows[329].item() == 7 and rows[330].item() == 8
    grid = torch.zeros(12, 12, dtype=torch.bool)
    grid[4] = True
    grid[8] = True
    mask = Text4SegHead(grid_size=12).grid_to_mask(grid, (495, 495))
    assert mask.dtype == torch.bool and mask.shape == (495, 495)
    assert mask[165].all() and mask[330].all()
    assert not mask[164].any() and not mask[329].any()
    ref = _float_reference(grid, (495, 495), torch.float64) > 0.5
    assert torch.equal(mask, ref)
    # float32 is what went wrong: it paints row 165 from cell 3.
    f32 = _float_reference(grid, (495, 495), torch.float32) > 0.5
    assert not f32[165].any()


def test_matches_float64_reference_over_random_sizes():
    rng = random.Random(0)
    differs_in_float32 = 0
    for _ in range(200):
        h, w = rng.randint(1, 64), rng.randint(1, 64)
        size = (rng.randint(128, 2500), rng.randint(128, 2500))
        # Distinct cell values: any wrong source index shows.
        grid = torch.arange(h * w, dtype=torch.float64).reshape(h, w)
        ref = _float_reference(grid, size, torch.float64)
        assert torch.equal(nearest_upsample_grid(grid, size), ref), (h, w,
                                                                      size)
        f32 = _float_reference(grid.float(), size, torch.float32)
        differs_in_float32 += not torch.equal(f32.double(), ref)
    # The randomized sizes do exercise the border case.
    assert differs_in_float32 > 10


def test_16x16_grid_on_every_image_size():
    grid = torch.arange(256, dtype=torch.float64).reshape(16, 16)
    for side in range(128, 1200):
        rows = nearest_source_index(16, side)
        ref = _float_reference(grid[:, :1], (side, 1), torch.float64)[:, 0]
        assert torch.equal(grid[rows, 0], ref), side


def test_batched_and_non_square():
    grid = torch.randint(0, 2, (3, 5, 7), dtype=torch.uint8)
    out = nearest_upsample_grid(grid, (11, 30))
    assert out.shape == (3, 11, 30) and out.dtype == torch.uint8
    for k in range(3):
        ref = _float_reference(grid[k], (11, 30), torch.float64)
        assert torch.equal(out[k].double(), ref)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match='positive'):
        nearest_source_index(0, 10)
    with pytest.raises(ValueError, match=r'\[\.\.\., h, w\]'):
        nearest_upsample_grid(torch.zeros(4), (8, 8))
