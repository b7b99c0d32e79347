# Copyright (c) mmrefseg contributors.
"""The light mask decoder of MLLMSeg: conditions DSFF features on [SEG]."""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrefseg.registry import MODELS
from mmrefseg.structures import MLLMOutputs
from ..layers import TransformerDecoderBlock
from ..losses.mask_focal_loss import MaskFocalLoss  # noqa: F401 (registers)
from ..utils.resized_mask_losses import resized_mask_losses
from .base_ref_head import BaseRefHead

ConfigType = Union[dict, Sequence[dict]]


@MODELS.register_module()
class LightMaskDecoderHead(BaseRefHead):
    """MLLMSeg's light mask decoder, one mask per ``[SEG]`` query.

    Per query q with image i = ``seg_to_image[q]``: the fused DSFF tokens of
    image i cross-attend to ``text_down(seg_embeds[q])`` (``ca_layer_vl``),
    ``conv1`` predicts ``patch_size**2`` sub-pixel logits per token,
    ``pixel_shuffle`` lays them out as a map ``patch_size`` times larger, and
    ``conv2`` (5x5) smooths it. Names match the released ``res_decoder``.

    The cross-attention has a single key, so its softmax is constantly 1:
    the q/k projections of ``ca_layer_vl.decoder.layers.0.multihead_attn``
    never receive gradients and the text acts as an additive per-channel
    bias before ``norm2``. They are kept for checkpoint compatibility.

    As a :class:`BaseRefHead` it takes the segmentor's neck features
    (``mask_source='features'``); :meth:`forward` and :meth:`loss_by_feat`
    also work on their own (e.g. in a plain MMSeg model).

    Args:
        llm_channels (int): LLM hidden size of the ``[SEG]`` states.
        embed_dims (int): Width d of the DSFF features. Default: 1024.
        num_heads (int): Heads of ``ca_layer_vl``. Default: 8.
        ffn_channels (int): FFN width of ``ca_layer_vl``. Default: 1024.
        dropout (float): Dropout of ``ca_layer_vl``. Default: 0.1.
        patch_size (int): Output pixels per feature cell along each side
            (the ViT patch size, 14). Default: 14.
        loss_mask (dict | list[dict], optional): Mask loss configs, default
            :attr:`DEFAULT_LOSS_MASK`. Each is called per query as
            ``loss(logits[1, H, W], target[1, H, W])`` and must return that
            mask's loss; the head averages over queries and sums losses
            that share a name.
        legacy_double_sigmoid (bool): Set ``legacy_double_sigmoid`` on every
            loss that has it, reproducing the released objective (see
            :class:`MaskFocalLoss`). Default: False.
        mask_prior_prob (float, optional): initialise ``conv2.bias`` so
            that every pixel starts at this foreground probability (e.g.
            0.05). None keeps the released init. Training from scratch
            needs it: measured on 4 overfitted images, Dice stays at 0.95
            after 80 steps with the released init and reaches 0.63 with
            0.05.
        dual_perception (bool): Ask the segmentor to run the LLM with
            SELF1E's dual-perception mask (image tokens attend to each
            other in both directions and to ``[SEG]``) instead of the causal
            one. Not MLLMSeg's released model (False); with the processor's
            ``question_first=True`` it lets every image
            state compare the whole image against the expression, which the
            tiny from-scratch config needs.
        init_cfg (dict, optional): MMEngine init config; when given it
            replaces the default init described in :meth:`init_weights`.
    """

    # Focal + dice with the released weights (1.0 each), alpha and gamma.
    # Scoped type names resolve whatever the config's default scope is.
    DEFAULT_LOSS_MASK = (
        dict(
            type='mmrefseg.MaskFocalLoss',
            alpha=0.25,
            gamma=2.0,
            loss_weight=1.0),
        dict(
            type='mmdet.DiceLoss',
            use_sigmoid=True,
            activate=True,
            naive_dice=True,
            eps=1.0,
            loss_weight=1.0),
    )

    def __init__(self,
                 llm_channels: int,
                 embed_dims: int = 1024,
                 num_heads: int = 8,
                 ffn_channels: int = 1024,
                 dropout: float = 0.1,
                 patch_size: int = 14,
                 loss_mask: Optional[ConfigType] = None,
                 legacy_double_sigmoid: bool = False,
                 mask_prior_prob: Optional[float] = None,
                 dual_perception: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.patch_size = patch_size
        if mask_prior_prob is not None and not 0 < mask_prior_prob < 1:
            raise ValueError('mask_prior_prob must be in (0, 1), got '
                             f'{mask_prior_prob}')
        self.mask_prior_prob = mask_prior_prob
        self.dual_perception = dual_perception
        self.text_down = nn.Linear(llm_channels, embed_dims)
        self.ca_layer_vl = TransformerDecoderBlock(embed_dims, num_heads,
                                                   ffn_channels, dropout)
        self.conv1 = nn.Sequential(
            nn.Conv2d(embed_dims, patch_size**2, 3, padding=1),
            nn.BatchNorm2d(patch_size**2),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Conv2d(1, 1, 5, padding=2)

        if loss_mask is None:
            loss_mask = self.DEFAULT_LOSS_MASK
        if isinstance(loss_mask, dict):
            loss_mask = [loss_mask]
        self.loss_mask = nn.ModuleList(MODELS.build(cfg) for cfg in loss_mask)
        self.legacy_double_sigmoid = legacy_double_sigmoid
        if legacy_double_sigmoid:
            legacy = [
                loss for loss in self.loss_mask
                if hasattr(loss, 'legacy_double_sigmoid')
            ]
            if not legacy:
                raise ValueError('legacy_double_sigmoid=True needs a loss '
                                 'that supports it, e.g. MaskFocalLoss')
            for loss in legacy:
                loss.legacy_double_sigmoid = True

    def init_weights(self) -> None:
        """Released init: xavier-uniform on every parameter with dim > 1.

        Attention/FFN biases are zeroed by the decoder block; the other
        biases keep PyTorch's defaults and BatchNorm starts at (1, 0).
        """
        was_initialized = self.is_init
        super().init_weights()
        if self.init_cfg is not None or was_initialized:
            return
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        if self.mask_prior_prob is not None:
            # Start every pixel at the foreground prior, as RetinaNet does:
            # conv1's BatchNorm re-centres its output, so the only way to
            # make the sparse-foreground map mostly negative is this bias,
            # which Adam would otherwise move by ~lr per step (thousands of
            # steps at lr 5e-4 before the masks can form).
            p = self.mask_prior_prob
            nn.init.constant_(self.conv2.bias, -math.log((1 - p) / p))

    mask_source = 'features'

    @property
    def llm_attention(self) -> str:
        """'dual_perception' with ``dual_perception=True``, else 'causal'."""
        return 'dual_perception' if self.dual_perception else 'causal'

    def loss_by_outputs(self, out: MLLMOutputs, gt_masks: List[Tensor],
                        data_samples: Sequence,
                        feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """:meth:`loss_by_feat` of the ``[SEG]`` queries on ``feats``.

        Returns ``loss_mask`` = 0 (every parameter in the graph, for DDP)
        when the batch has no ``[SEG]``.
        """
        if len(gt_masks) == 0:
            return dict(loss_mask=sum(p.sum() * 0.
                                      for p in self.parameters()))
        logits = self(feats, out.seg_states.to(self.text_down.weight.dtype),
                      out.seg_to_sample)
        return self.loss_by_feat(logits, gt_masks)

    def predict_by_outputs(self, out: MLLMOutputs, data_samples: Sequence,
                           feats: Optional[Tensor] = None) -> List[Tensor]:
        """Logits of each conversation's queries, [K_b, 1, h*p, w*p]."""
        logits = self(feats, out.seg_states.to(self.text_down.weight.dtype),
                      out.seg_to_sample)
        counts = torch.bincount(out.seg_to_sample,
                                minlength=len(data_samples)).tolist()
        return list(logits.split(counts))

    def forward(self, fused: Tensor, seg_embeds: Tensor,
                seg_to_image: Tensor) -> Tensor:
        """Predict one mask per query.

        Args:
            fused (Tensor): DSFF features, shape (N, d, h, w).
            seg_embeds (Tensor): ``[SEG]`` hidden states, shape (Q, C_llm).
            seg_to_image (Tensor): Long tensor (Q,), image index of each
                query into ``fused``.

        Returns:
            Tensor: Mask logits, shape (Q, 1, h * patch_size,
            w * patch_size).
        """
        _, d, h, w = fused.shape
        num_queries = seg_embeds.shape[0]
        p = self.patch_size
        if num_queries == 0:
            return fused.new_zeros((0, 1, h * p, w * p))
        tokens = fused.flatten(2).transpose(1, 2).index_select(
            0, seg_to_image.to(fused.device))  # (Q, h*w, d)
        text = self.text_down(seg_embeds).unsqueeze(1)  # (Q, 1, d)
        tokens = self.ca_layer_vl(tokens, text)
        x = self.conv1(tokens.transpose(1, 2).reshape(num_queries, d, h, w))
        # out[p*i + a, p*j + b] = channel p*a + b of cell (i, j)
        x = F.pixel_shuffle(x, p)
        return self.conv2(x)

    def loss_by_feat(self, mask_logits: Tensor,
                     gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Mask losses at each query's original resolution.

        See :func:`resized_mask_losses`: logits are bilinearly resized to
        each GT's size and every mask counts once. Losses that share a name
        are summed. With ``legacy_double_sigmoid`` the released code resized
        probabilities rather than logits; the two differ only along mask
        edges, and this head always resizes logits.

        Args:
            mask_logits (Tensor): Shape (Q, 1, h', w').
            gt_masks (Sequence[Tensor]): Q binary masks, each (H_q, W_q).

        Returns:
            dict[str, Tensor]: One scalar per loss, keyed by loss name.
        """
        return resized_mask_losses(self.loss_mask, mask_logits, gt_masks)
