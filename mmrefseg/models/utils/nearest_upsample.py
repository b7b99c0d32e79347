# Copyright (c) mmrefseg contributors.
"""Legacy nearest upsampling of a small grid, with exact source indices.

Text4Seg paints its descriptor grid onto the image with PyTorch's legacy
``nearest`` mode on a float64 tensor: output pixel ``d`` of an axis of size
``out`` reads grid cell ``floor(d * in / out)``. In float32 the product
``d * (in / out)`` lands just below an integer whenever a cell border falls
exactly on a pixel (rows 165 and 330 of a 12-row grid at 495 px), so those
rows read the previous cell. The indices here are integer divisions, which
is the formula itself: equal to the float64 interpolation at every output
size of 128 px or more (every grid side 1-64, every size 128-2,500
checked). Below 128 px the float64 kernel has its own off-by-one at a
handful of sizes (82 of the 160,000 pairs grid 1-64 x size 1-2,500, all
at sizes under 128, one row or column each); the formula is kept there.
"""
from typing import Sequence

import torch
from torch import Tensor


def nearest_source_index(in_size: int, out_size: int,
                         device=None) -> Tensor:
    """Source index of each output position: ``floor(d * in / out)``.

    Args:
        in_size (int): Cells along the axis (> 0).
        out_size (int): Output pixels along the axis (> 0).
        device: Device of the result.

    Returns:
        Tensor: ``[out_size]`` long indices in ``[0, in_size)``.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError('nearest_source_index needs positive sizes, got '
                         f'in_size={in_size}, out_size={out_size}')
    dst = torch.arange(out_size, dtype=torch.long, device=device)
    return torch.div(dst * in_size, out_size, rounding_mode='floor')


def nearest_upsample_grid(grid: Tensor, size: Sequence[int]) -> Tensor:
    """Upsample the last two dims of ``grid`` to ``size`` (legacy nearest).

    Args:
        grid (Tensor): ``[..., h, w]`` of any dtype.
        size (Sequence[int]): ``(H, W)``.

    Returns:
        Tensor: ``[..., H, W]``, same dtype as ``grid``; pixel ``(y, x)``
        is cell ``(floor(y * h / H), floor(x * w / W))``.
    """
    if grid.dim() < 2:
        raise ValueError('nearest_upsample_grid needs a [..., h, w] grid, '
                         f'got shape {tuple(grid.shape)}')
    height, width = (int(v) for v in size)
    rows = nearest_source_index(grid.shape[-2], height, grid.device)
    cols = nearest_source_index(grid.shape[-1], width, grid.device)
    return grid.index_select(-2, rows).index_select(-1, cols)
