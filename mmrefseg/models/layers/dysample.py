# Copyright (c) mmrefseg contributors.
"""DySample: learned-offset upsampling (MLLMSeg's LLM-feature upsampler)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor


class DySample(BaseModule):
    """DySample upsampler, "lp" style with a static offset scope.

    Each output pixel bilinearly samples the input at a learned position:
    a 1x1 conv predicts ``2 * groups * scale**2`` offsets per input pixel,
    scaled by :attr:`OFFSET_SCOPE` and added to ``init_pos``, the sub-pixel
    centres of a plain bilinear upsampling. With zero offsets the module is
    exactly ``F.interpolate(scale, 'bilinear', align_corners=False)``.

    Channel layout of ``init_pos`` and of the offsets (released checkpoint):
    ``index = xy * groups * s**2 + g * s**2 + a * s + b`` where ``xy`` 0/1 is
    the x/y component and ``(a, b)`` the output sub-pixel row/column; the x
    component is ``h[b]``, the y component ``h[a]``, with
    ``h = (arange(s) - (s - 1) / 2) / s`` (``[-0.25, 0.25]`` for s = 2).

    Args:
        in_channels (int): Channels C; must be divisible by ``groups``.
        scale_factor (int): Integer upsampling factor s.
        groups (int): Channel groups with their own sampling positions.
        init_cfg (dict, optional): MMEngine init config.
    """

    # Static scope: keeps learned offsets within a quarter of an input pixel
    # around their initial positions so neighbouring samples rarely cross.
    OFFSET_SCOPE = 0.25
    # DySample initialises the offset conv near zero so training starts from
    # plain bilinear upsampling.
    OFFSET_INIT_STD = 0.001

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 groups: int = 4,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels % groups != 0:
            raise ValueError(f'in_channels ({in_channels}) must be divisible '
                             f'by groups ({groups})')
        self.scale_factor = scale_factor
        self.groups = groups
        self.offset = nn.Conv2d(in_channels, 2 * groups * scale_factor**2, 1)
        self.register_buffer('init_pos', self._initial_positions())

    def _initial_positions(self) -> Tensor:
        """Sub-pixel sampling positions of bilinear upsampling.

        Returns:
            Tensor: Shape (1, 2 * groups * s**2, 1, 1), in input pixels.
        """
        s = self.scale_factor
        h = (torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / s
        y, x = torch.meshgrid(h, h, indexing='ij')  # y[a, b] = h[a]
        pos = torch.stack([x, y])[:, None].expand(2, self.groups, s, s)
        return pos.reshape(1, -1, 1, 1).clone()

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            nn.init.normal_(self.offset.weight, std=self.OFFSET_INIT_STD)
            nn.init.zeros_(self.offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample ``x`` by ``scale_factor``.

        Args:
            x (Tensor): Shape (N, C, H, W).

        Returns:
            Tensor: Shape (N, C, s * H, s * W).
        """
        n, c, h, w = x.shape
        s, g = self.scale_factor, self.groups
        offset = self.offset(x) * self.OFFSET_SCOPE + self.init_pos
        offset = offset.view(n, 2, g * s * s, h, w)
        # Pixel centres in grid_sample's align_corners=False convention:
        # a continuous coordinate u in [0, W] maps to 2 * u / W - 1.
        xs = torch.arange(w, dtype=x.dtype, device=x.device) + 0.5
        ys = torch.arange(h, dtype=x.dtype, device=x.device) + 0.5
        grid_x = (xs.view(1, 1, 1, w) + offset[:, 0]) * (2 / w) - 1
        grid_y = (ys.view(1, 1, h, 1) + offset[:, 1]) * (2 / h) - 1
        grid = torch.stack([grid_x, grid_y], dim=1)  # (N, 2, g*s*s, H, W)
        # Move each (a, b) sub-position to output pixel (s*i + a, s*j + b).
        grid = F.pixel_shuffle(grid.reshape(n, 2 * g * s * s, h, w), s)
        grid = grid.view(n, 2, g, s * h, s * w).permute(0, 2, 3, 4, 1)
        out = F.grid_sample(
            x.reshape(n * g, c // g, h, w),
            grid.reshape(n * g, s * h, s * w, 2),
            mode='bilinear',
            padding_mode='border',
            align_corners=False)
        return out.view(n, c, s * h, s * w)
