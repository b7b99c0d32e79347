# Copyright (c) mmrefseg contributors.
"""Inverse of InternVL's pixel shuffle, its token compression for the LLM."""
from torch import Tensor


def internvl_pixel_unshuffle(x: Tensor, factor: int = 2) -> Tensor:
    """Exact inverse of InternVL's (v2) pixel shuffle, channels last.

    InternVL packs the ``factor x factor`` block of pixel (i, j) into
    channel chunks in sub-pixel-major order: chunk ``k = factor*dr + dc``
    holds pixel ``(factor*i + dr, factor*j + dc)``. This is not
    ``F.pixel_unshuffle``'s channel-major order. Written directly (not with
    the original's dimension swaps) it is correct for non-square grids too.

    Args:
        x (Tensor): Shape (..., h, w, factor**2 * c).
        factor (int): Sub-pixels per side. Default: 2.

    Returns:
        Tensor: Shape (..., factor*h, factor*w, c).
    """
    *lead, h, w, ch = x.shape
    c = ch // factor**2
    x = x.reshape(*lead, h, w, factor, factor, c)
    x = x.transpose(-4, -3)  # (..., h, dr, w, dc, c)
    return x.reshape(*lead, h * factor, w * factor, c)
