# Copyright (c) mmrefseg contributors.
"""A training-only auxiliary mask read straight from the LLM image states."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmrefseg.registry import MODELS
from ..utils.resized_mask_losses import resized_mask_losses


@MODELS.register_module()
class LLMStateAuxHead(BaseModule):
    """Deep supervision of the LLM image states by a ``[SEG]`` dot product.

    An MMSeg-style ``auxiliary_head`` for :class:`RefSegmentor`: it adds a
    loss during training and is never used to predict, so the model it
    trains is exactly the one the decode head defines (checkpoints keep
    its keys under ``auxiliary_head.`` and loaders of the released weights
    ignore them).

    Per query q of image i: every LLM image state of image i is mapped by
    ``image_proj`` to ``upsample**2`` sub-cell features of width d, laid out
    ``upsample`` times finer by ``pixel_shuffle`` (the LLM grid 8x8 becomes
    the ViT grid 16x16 for InternVL's 0.5 pixel shuffle), and dotted with
    ``seg_proj(seg_states[q])``:
    ``logits[q] = <F_i(y, x), s_q> / sqrt(d) + bias``.
    With ``query='learned'`` a learned vector replaces ``s_q``: a per-cell
    linear classifier for heads without a ``[SEG]`` state (Text4Seg), valid
    when each conversation has one expression and the image states can read
    it (the processor's ``question_first=True``).

    The readout is linear on purpose: it can only score a cell if the
    LLM state of that cell already says whether it belongs to the referred
    object. This is SELF1E's auxiliary loss (``PU(A) . s``) given to a
    decoder model: MLLMSeg's LLM image states reach the mask only through
    the DSFF fusion and the light decoder, and trained from scratch its
    LLM learned which object an expression picks far more slowly than
    SELF1E's (README, "Results on the synthetic dataset").

    Args:
        llm_channels (int): LLM hidden size C.
        embed_dims (int): Width d of the dot product. Default: 128.
        upsample (int): Sub-cells per LLM cell along each side. Default: 2.
        query (str): ``'seg'`` (default) dots with the projected ``[SEG]``
            states; ``'learned'`` with one learned vector.
        loss_mask (list[dict], optional): Mask loss configs, each called as
            ``loss(logits[n, 1, H, W], target[n, 1, H, W])`` on logits
            resized to the GT size. Default :attr:`DEFAULT_LOSS_MASK`
            (SELF1E's 2.0 BCE + 0.5 Dice).
        mask_prior_prob (float, optional): Start ``bias`` at this foreground
            probability. Default: 0.05 (the synthetic masks cover a few
            percent of the image).
        init_cfg (dict, optional): MMEngine init config.
    """

    QUERIES = ('seg', 'learned')
    DEFAULT_LOSS_MASK = (
        dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
             loss_weight=2.0),
        dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
             naive_dice=True, eps=1e-3, loss_weight=0.5),
    )

    def __init__(self,
                 llm_channels: int,
                 embed_dims: int = 128,
                 upsample: int = 2,
                 query: str = 'seg',
                 loss_mask: Optional[Sequence[dict]] = None,
                 mask_prior_prob: Optional[float] = 0.05,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if upsample < 1:
            raise ValueError(f'upsample must be >= 1, got {upsample}')
        if mask_prior_prob is not None and not 0 < mask_prior_prob < 1:
            raise ValueError('mask_prior_prob must be in (0, 1), got '
                             f'{mask_prior_prob}')
        if query not in self.QUERIES:
            raise ValueError(f'query must be one of {self.QUERIES}, got '
                             f'{query!r}')
        self.embed_dims = embed_dims
        self.upsample = upsample
        self.query = query
        self.mask_prior_prob = mask_prior_prob
        self.image_proj = nn.Linear(llm_channels, upsample**2 * embed_dims)
        if query == 'seg':
            self.seg_proj = nn.Linear(llm_channels, embed_dims)
        else:
            # Unit-variance entries: the dot product then has the scale a
            # projected [SEG] state would give it.
            self.query_embed = nn.Parameter(torch.randn(embed_dims))
        self.bias = nn.Parameter(torch.zeros(()))
        if loss_mask is None:
            loss_mask = self.DEFAULT_LOSS_MASK
        if isinstance(loss_mask, dict):
            loss_mask = [loss_mask]
        self.loss_mask = nn.ModuleList(MODELS.build(cfg) for cfg in loss_mask)

    def init_weights(self) -> None:
        """PyTorch's Linear init; ``bias`` at the foreground prior."""
        was_initialized = self.is_init
        super().init_weights()
        if self.init_cfg is not None or was_initialized:
            return
        if self.mask_prior_prob is not None:
            p = self.mask_prior_prob
            with torch.no_grad():
                self.bias.fill_(-math.log((1 - p) / p))

    def forward(self, llm_image_states: Tensor,
                seg_states: Optional[Tensor], seg_to_image: Tensor) -> Tensor:
        """Coarse mask logits of every query.

        Args:
            llm_image_states (Tensor): LLM states at the image tokens as a
                map, (N, C, h, w).
            seg_states (Tensor | None): ``[SEG]`` states, (Q, C); ignored
                (may be None) with ``query='learned'``.
            seg_to_image (Tensor): Long (Q,), index into N of each query's
                image.

        Returns:
            Tensor: Logits, shape (Q, 1, upsample * h, upsample * w).
        """
        s, d = self.upsample, self.embed_dims
        # Project only the images that queries read (not the local tiles of
        # dynamic tiling), each once however many queries share it.
        images, per_query = torch.unique(
            seg_to_image.to(llm_image_states.device), return_inverse=True)
        states = llm_image_states.index_select(0, images)
        n, _, h, w = states.shape
        cells = self.image_proj(states.flatten(2).transpose(1, 2))
        feats = F.pixel_shuffle(
            cells.transpose(1, 2).reshape(n, s * s * d, h, w), s)
        feats = feats.index_select(0, per_query)
        if self.query == 'seg':
            query = self.seg_proj(seg_states)  # (Q, d)
        else:
            query = self.query_embed.to(feats.dtype).expand(len(feats), -1)
        logits = torch.einsum('qdyx,qd->qyx', feats, query)
        return (logits / math.sqrt(d) + self.bias).unsqueeze(1)

    def loss(self, llm_image_states: Tensor, seg_states: Optional[Tensor],
             seg_to_image: Tensor,
             gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
        """The configured mask losses of the coarse logits.

        Args:
            llm_image_states (Tensor): (N, C, h, w), see :meth:`forward`.
            seg_states (Tensor | None): (Q, C), see :meth:`forward`.
            seg_to_image (Tensor): (Q,).
            gt_masks (Sequence[Tensor]): Q binary masks at their images'
                original sizes.

        Returns:
            dict[str, Tensor]: One scalar per loss name (summed when names
            repeat), each averaged over the Q masks.
        """
        logits = self(llm_image_states, seg_states, seg_to_image)
        return resized_mask_losses(self.loss_mask, logits, gt_masks)
