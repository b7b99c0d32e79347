# Copyright (c) mmrefseg contributors.
"""The post-norm transformer decoder block of MLLMSeg's neck and decoder."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor


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
