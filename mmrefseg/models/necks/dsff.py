# Copyright (c) mmrefseg contributors.
"""DSFF: the query-independent half of MLLMSeg's decoder.

MLLMSeg (arXiv 2508.04107) fuses three views of the image into one feature
map that a light mask decoder then conditions on each ``[SEG]`` query:

* ``V2L``: ViT tokens cross-attending to the LLM's image tokens,
* ``V``:   the raw ViT tokens,
* ``L32``: the LLM's image tokens upsampled to the ViT grid by DySample.

Nothing here depends on the query, so :class:`DSFFNeck` runs once per image;
the released code recomputed it once per ``[SEG]`` token. Submodule names
equal those inside the released ``res_decoder`` so checkpoints map one-to-one
(``res_decoder.<name>`` -> ``neck.<name>``).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmrefseg.registry import MODELS


class TransformerDecoderBlock(BaseModule):
    """Post-norm ``nn.TransformerDecoder`` with a final LayerNorm.

    The wrapper exists only to reproduce the released key layout
    ``<name>.decoder.layers.<i>.{self_attn,multihead_attn,linear1,linear2,
    norm1..3}`` and ``<name>.decoder.norm``; ``nn.TransformerDecoderLayer``
    is numerically the released layer (post-norm, ReLU FFN, no positional
    embeddings, attention dropout equal to the residual dropout).

    Args:
        embed_dims (int): Token width d.
        num_heads (int): Attention heads.
        ffn_channels (int): Hidden width of the FFN.
        dropout (float): Residual, FFN and attention dropout.
        num_layers (int): Decoder layers; the released model uses 1.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 ffn_channels: int,
                 dropout: float = 0.1,
                 num_layers: int = 1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        layer = nn.TransformerDecoderLayer(
            d_model=embed_dims,
            nhead=num_heads,
            dim_feedforward=ffn_channels,
            dropout=dropout,
            activation='relu',
            batch_first=True,
            norm_first=False)
        self.decoder = nn.TransformerDecoder(
            layer, num_layers=num_layers, norm=nn.LayerNorm(embed_dims))

    def init_weights(self) -> None:
        """Zero every bias of the attention and FFN projections.

        The released transformer zeroed them before its xavier passes; the
        owning module applies xavier to the weights afterwards.
        """
        super().init_weights()
        if self.init_cfg is not None:
            return
        for module in self.modules():
            if isinstance(module, nn.MultiheadAttention):
                nn.init.zeros_(module.in_proj_bias)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tgt: Tensor, memory: Tensor) -> Tensor:
        """Let ``tgt`` tokens attend to themselves and then to ``memory``.

        Args:
            tgt (Tensor): Query tokens, shape (N, L, d).
            memory (Tensor): Key/value tokens, shape (N, S, d).

        Returns:
            Tensor: Updated query tokens, shape (N, L, d).
        """
        return self.decoder(tgt, memory)


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


@MODELS.register_module()
class DSFFNeck(BaseModule):
    """Deep-shallow feature fusion of MLLMSeg (query independent).

    ``fused = text_out_adapter(cat[V2L, V, L32])`` on the ViT grid, where
    ``L = img_llm_down(llm_feats)``, ``V2L = ca_layer_v2l(V, L)`` and
    ``L32 = upsample_adapter_l(L)``. The channel order V2L | V | L32 is the
    released one.

    Args:
        vit_channels (int): ViT feature width (1024 for InternViT-300M).
        llm_channels (int): LLM hidden size (4096 for InternVL2.5-8B).
        embed_dims (int): Fusion width d. Default: 1024.
        num_heads (int): Heads of ``ca_layer_v2l``. Default: 8.
        ffn_channels (int): FFN width of ``ca_layer_v2l``. Default: 1024.
        dropout (float): Dropout of ``ca_layer_v2l``. Default: 0.1.
        dysample_groups (int): DySample groups. Default: 4.
        scale_factor (int): ViT grid / LLM grid. It fixes the width of
            DySample's offset conv, so it is a constructor argument and
            ``forward`` checks it against the inputs. InternVL's 0.5 pixel
            shuffle makes it 2. Default: 2.
        faithful_init (bool): Apply xavier to DySample's offset conv as the
            released code did (its offsets then start far from bilinear
            upsampling). Default False keeps DySample's std-0.001 init.
        init_cfg (dict, optional): MMEngine init config; when given it
            replaces the default init described in :meth:`init_weights`.
    """

    def __init__(self,
                 vit_channels: int,
                 llm_channels: int,
                 embed_dims: int = 1024,
                 num_heads: int = 8,
                 ffn_channels: int = 1024,
                 dropout: float = 0.1,
                 dysample_groups: int = 4,
                 scale_factor: int = 2,
                 faithful_init: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.scale_factor = scale_factor
        self.faithful_init = faithful_init
        self.img_llm_down = nn.Linear(llm_channels, embed_dims)
        # The released model has vit_channels == embed_dims and no
        # projection; adding one only when needed keeps its key layout.
        self.vit_proj = (
            nn.Linear(vit_channels, embed_dims)
            if vit_channels != embed_dims else None)
        self.ca_layer_v2l = TransformerDecoderBlock(embed_dims, num_heads,
                                                    ffn_channels, dropout)
        self.upsample_adapter_l = DySample(
            embed_dims, scale_factor=scale_factor, groups=dysample_groups)
        self.text_out_adapter = nn.Linear(3 * embed_dims, embed_dims)

    def init_weights(self) -> None:
        """Released init: xavier-uniform on every parameter with dim > 1.

        Biases keep PyTorch's defaults, except those zeroed by the decoder
        block and DySample. Deliberate deviation: DySample's offset conv
        keeps its std-0.001 init (the released code overwrote it with
        xavier, contrary to DySample's design) unless ``faithful_init``.
        """
        was_initialized = self.is_init
        super().init_weights()
        if self.init_cfg is not None or was_initialized:
            return
        offset_weight = self.upsample_adapter_l.offset.weight
        for param in self.parameters():
            if param.dim() > 1 and (self.faithful_init
                                    or param is not offset_weight):
                nn.init.xavier_uniform_(param)

    def forward(self, vit_feats: Tensor, llm_feats: Tensor) -> Tensor:
        """Fuse ViT and LLM image features on the ViT grid.

        Args:
            vit_feats (Tensor): ViT tokens as a map, (N, C_vit, h_v, w_v).
            llm_feats (Tensor): LLM hidden states at the image tokens as a
                map, (N, C_llm, h_l, w_l), with (h_v, w_v) equal to
                ``scale_factor`` * (h_l, w_l).

        Returns:
            Tensor: Fused features, shape (N, embed_dims, h_v, w_v).
        """
        n, _, h_v, w_v = vit_feats.shape
        _, _, h_l, w_l = llm_feats.shape
        s = self.scale_factor
        if (h_v, w_v) != (s * h_l, s * w_l):
            raise ValueError(
                f'ViT grid {h_v}x{w_v} must be {s}x the LLM grid '
                f'{h_l}x{w_l} (scale_factor={s})')
        llm_tokens = self.img_llm_down(llm_feats.flatten(2).transpose(1, 2))
        vit_tokens = vit_feats.flatten(2).transpose(1, 2)
        if self.vit_proj is not None:
            vit_tokens = self.vit_proj(vit_tokens)
        v2l = self.ca_layer_v2l(vit_tokens, llm_tokens)
        llm_map = llm_tokens.transpose(1, 2).reshape(n, -1, h_l, w_l)
        llm_up = self.upsample_adapter_l(llm_map).flatten(2).transpose(1, 2)
        fused = self.text_out_adapter(
            torch.cat([v2l, vit_tokens, llm_up], dim=-1))
        return fused.transpose(1, 2).reshape(n, -1, h_v, w_v)
