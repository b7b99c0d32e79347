# Copyright (c) mmrefseg contributors.
"""Fixed position tables for models trained from scratch."""
import torch


def sincos_2d_position_table(rows: int, cols: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2D sine-cosine position table, row-major patches.

    The first half of the channels encodes the column (x), the second half
    the row (y); each half is ``[sin(p * w_k), cos(p * w_k)]`` with
    ``w_k = 10000 ** (-k / (dim / 4))``.

    Args:
        rows (int): Patch rows.
        cols (int): Patch columns.
        dim (int): Channels, a multiple of 4.

    Returns:
        Tensor: Shape (rows * cols, dim), float32.
    """
    if dim % 4 != 0:
        raise ValueError(
            f'sin-cos position table needs dim % 4 == 0, got {dim}')
    omega = 1.0 / 10000**(torch.arange(dim // 4, dtype=torch.float64) /
                           (dim / 4))
    y, x = torch.meshgrid(torch.arange(rows, dtype=torch.float64),
                          torch.arange(cols, dtype=torch.float64),
                          indexing='ij')

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(x), encode(y)], dim=1).float()
