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
from mmengine.model import BaseModule
from torch import Tensor

from mmrefseg.registry import MODELS
from ..layers import DySample, TransformerDecoderBlock


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
