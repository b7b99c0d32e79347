# Copyright (c) mmrefseg contributors.
"""SELF1E: one ``[SEG]`` token, no mask decoder, refilled LLM features."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrefseg.registry import MODELS
from ..backbones.mllm_outputs import MLLMOutputs
from ..utils.pixel_unshuffle import internvl_pixel_unshuffle
from .base_ref_head import BaseRefHead

# (first tile, rows, cols) of a conversation's tile grid.
TileLayout = Tuple[int, int, int]


@MODELS.register_module()
class Self1EHead(BaseRefHead):
    """SELF1E's residual feature refilling/amplification and dot-product mask.

    Per conversation with a tile grid of R x Cc tiles (n tokens per tile
    after pixel shuffle, h1 = w1 = sqrt(n); the ViT grid is 2x, the output
    4x that):

    1. ``A = P_all(LLM output at the image tokens)`` and
       ``B = P_ori(LLM input at the image tokens)``, both (16R, 16Cc, 4C)
       for 448 px tiles;
    2. RFR: ``res = PU(A - B)`` (32R, 32Cc, C);
    3. the uncompressed branch: every pre-shuffle ViT token is replicated
       four times along channels and sent through the backbone's own
       projector, giving (32R, 32Cc, C) features that never enter the LLM
       (the backbone computes them, :attr:`MLLMOutputs.uncompressed_embeds`,
       because the head declares ``needs_uncompressed_vision``);
    4. RFA: ``U = PU(P_ori(uncompressed))`` (64R, 64Cc, C);
    5. ``F = P_dec(U + up2(res))`` (bilinear up-sampling);
    6. ``s = P_dec(mean of the four C-wide chunks of P_all(h_seg))``;
    7. logits ``F . s / sqrt(C)`` (64R, 64Cc), and in training the
       auxiliary ``PU(A) . s / sqrt(C)`` (32R, 32Cc).

    PU is :func:`internvl_pixel_unshuffle`, P_* are two-layer GELU MLPs
    named like the released checkpoint's new modules
    (``combine_decode_proj{,_all,_ori}.{0,2}``), 12C^2 + 12C parameters.
    The head declares the dual-perception LLM attention
    (``llm_attention``), which :class:`RefSegmentor` asks the backbone to
    run. The backbone must read ``h_seg`` at the token before ``[SEG]``
    (``seg_state_offset=-1``) and the image states in place
    (``image_state_offset=0``, as the released configs set it). SELF1E
    has no no-target token: an empty predicted mask is its "no target"
    (``no_target_rule='empty_mask'``).

    Args:
        llm_channels (int): LLM hidden size C.
        loss_mask (dict, optional): Loss name -> loss config, default
            :attr:`DEFAULT_LOSS_MASK` (2.0 BCE + 0.5 Dice, SELF1E's values).
            Each loss is called on a group of same-sized masks as
            ``loss(logits[n, 1, H, W], target[n, 1, H, W])`` and must return
            the mean over the group's masks.
        aux_loss_weight (float): Weight of the same losses on the auxiliary
            low-resolution logits (the original's 1.0; 0 disables them).
        aux_decode_proj (bool): Apply P_dec to the auxiliary features, as
            the InternVL2 variant of the original does; the InternVL3
            variant (default) does not.
        gt_short_side (int, optional): Bilinearly resize GT masks whose
            short side exceeds this to that short side (soft targets), and
            compute the losses there, as the original does (128). None
            keeps binary GT at the original resolution.
        loss_normalizer (str): 'rows' divides the summed per-mask losses by
            the number of conversations (the original), 'masks' by the
            number of masks.
        dual_perception (bool): Use the dual-perception attention mask;
            False keeps the LLM causal (ablation).
        init_cfg (dict, optional): MMEngine init config; when given it
            replaces the default init of :meth:`init_weights`.
    """

    DEFAULT_LOSS_MASK = dict(
        loss_bce=dict(type='mmdet.CrossEntropyLoss',
                      use_sigmoid=True,
                      loss_weight=2.0),
        # The original dice divides every sum by 1000 and adds 1e-6, i.e.
        # eps = 1e-3 on the plain sums.
        loss_dice=dict(type='mmdet.DiceLoss',
                       use_sigmoid=True,
                       activate=True,
                       naive_dice=True,
                       eps=1e-3,
                       loss_weight=0.5),
    )
    #: Sub-pixels per side undone by PU (InternVL's downsample_ratio 0.5).
    FACTOR = 2
    AUX_SUFFIX = '_aux'

    def __init__(self,
                 llm_channels: int,
                 loss_mask: Optional[Dict[str, dict]] = None,
                 aux_loss_weight: float = 1.0,
                 aux_decode_proj: bool = False,
                 gt_short_side: Optional[int] = 128,
                 loss_normalizer: str = 'rows',
                 dual_perception: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if loss_normalizer not in ('rows', 'masks'):
            raise ValueError("loss_normalizer must be 'rows' or 'masks', "
                             f'got {loss_normalizer!r}')
        c, wide = llm_channels, self.FACTOR**2 * llm_channels
        self.llm_channels = c
        self.combine_decode_proj = self._mlp(c, c)
        self.combine_decode_proj_all = self._mlp(c, wide)
        self.combine_decode_proj_ori = self._mlp(c, wide)
        loss_mask = self.DEFAULT_LOSS_MASK if loss_mask is None else loss_mask
        self.loss_mask = nn.ModuleDict({
            name: MODELS.build(cfg)
            for name, cfg in loss_mask.items()
        })
        self.aux_loss_weight = aux_loss_weight
        self.aux_decode_proj = aux_decode_proj
        self.gt_short_side = gt_short_side
        self.loss_normalizer = loss_normalizer
        self.dual_perception = dual_perception

    @staticmethod
    def _mlp(c_in: int, c_out: int) -> nn.Sequential:
        # Index 0 / 2 are the released Linear keys; 1 is the exact GELU.
        return nn.Sequential(nn.Linear(c_in, c_in), nn.GELU(),
                             nn.Linear(c_in, c_out))

    def init_weights(self) -> None:
        """Xavier-normal weights and zero biases.

        This is what the original training script meant to do; its name
        filter never matched, so the released runs used the HF default
        N(0, 0.02) instead.
        """
        was_initialized = self.is_init
        super().init_weights()
        if self.init_cfg is not None or was_initialized:
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    # -------------------------------------------------------- declarations
    mask_source = 'outputs'
    needs_uncompressed_vision = True
    no_target_rule = 'empty_mask'

    @property
    def llm_attention(self) -> str:
        """'dual_perception' (SELF1E), or 'causal' with
        ``dual_perception=False`` (ablation)."""
        return 'dual_perception' if self.dual_perception else 'causal'

    # ------------------------------------------------------------ forward
    def seg_embeddings(self, seg_states: Tensor) -> Tensor:
        """``[SEG]`` embeddings: P_dec of the chunk mean of P_all(h_seg).

        Args:
            seg_states (Tensor): Hidden states, shape (Q, C).

        Returns:
            Tensor: Shape (Q, C).
        """
        wide = self.combine_decode_proj_all(seg_states)
        mean = wide.unflatten(-1, (self.FACTOR**2, self.llm_channels)).mean(-2)
        return self.combine_decode_proj(mean)

    def forward(
            self,
            out: MLLMOutputs,
            layouts: Sequence[TileLayout],
            with_aux: bool = False
    ) -> Tuple[List[Tensor], Optional[List[Tensor]]]:
        """Mask logits of every ``[SEG]``, grouped by conversation.

        Args:
            out (MLLMOutputs): Backbone outputs of the batch, with
                ``uncompressed_embeds``.
            layouts (Sequence[TileLayout]): (first tile, rows, cols) of each
                conversation; see :meth:`tile_layouts`.
            with_aux (bool): Also compute the auxiliary logits.

        Returns:
            tuple: ``logits``, a list over conversations of (K_b, 1, 2*H0,
            2*W0) with K_b the conversation's ``[SEG]`` count and H0 x W0
            its ViT grid (R*h_v x Cc*w_v); ``aux``, a list of
            (K_b, 1, H0, W0), or None.
        """
        self._check_outputs(out)
        dtype = self.combine_decode_proj[0].weight.dtype
        c = self.llm_channels
        # Channels-last tile grids: LLM output / input (n, h1, w1, C).
        llm_out = out.llm_image_states.permute(0, 2, 3, 1).to(dtype)
        llm_in = out.image_embeds.permute(0, 2, 3, 1).to(dtype)
        wide_out = self.combine_decode_proj_all(llm_out)
        residual = internvl_pixel_unshuffle(
            wide_out - self.combine_decode_proj_ori(llm_in), self.FACTOR)
        amplified = internvl_pixel_unshuffle(
            self.combine_decode_proj_ori(
                out.uncompressed_embeds.to(dtype)), self.FACTOR)
        aux_feats = internvl_pixel_unshuffle(wide_out, self.FACTOR) \
            if with_aux else None

        seg_embeds = self.seg_embeddings(out.seg_states.to(dtype))
        # [SEG] rows are ordered by conversation: sample b owns a run.
        counts = torch.bincount(out.seg_to_sample,
                                minlength=len(layouts)).tolist()
        starts = [sum(counts[:b]) for b in range(len(layouts))]
        scale = 1.0 / math.sqrt(c)
        logits: List[Optional[Tensor]] = [None] * len(layouts)
        aux: List[Optional[Tensor]] = [None] * len(layouts)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for b, (_, rows, cols) in enumerate(layouts):
            groups.setdefault((rows, cols), []).append(b)
        for (rows, cols), members in groups.items():
            tiles = [
                layouts[b][0] + t for b in members for t in range(rows * cols)
            ]
            res = self._assemble(residual, tiles, rows, cols)
            amp = self._assemble(amplified, tiles, rows, cols)
            res = F.interpolate(res.permute(0, 3, 1, 2),
                                size=amp.shape[1:3],
                                mode='bilinear',
                                align_corners=False).permute(0, 2, 3, 1)
            refilled = self.combine_decode_proj(amp + res)  # (G, H2, W2, C)
            # Queries padded to (G, K_max, C): one batched product, and
            # no per-sample slicing of the large feature maps (each such
            # slice costs a full-size zero gradient in backward).
            sizes = [counts[b] for b in members]
            g_idx = [g for g, k in enumerate(sizes) for _ in range(k)]
            k_idx = [i for k in sizes for i in range(k)]
            q_idx = [starts[b] + i for b in members for i in range(counts[b])]
            padded = seg_embeds.new_zeros(len(members), max(sizes), c)
            where = (torch.as_tensor(g_idx, device=padded.device,
                                     dtype=torch.long),
                     torch.as_tensor(k_idx, device=padded.device,
                                     dtype=torch.long))
            padded = padded.index_put(where, seg_embeds[q_idx])
            maps = [(logits, refilled)]
            if with_aux:
                low = self._assemble(aux_feats, tiles, rows, cols)
                if self.aux_decode_proj:
                    low = self.combine_decode_proj(low)
                maps.append((aux, low))
            for target, feats in maps:
                dots = torch.bmm(padded, feats.flatten(1, 2).transpose(1, 2))
                dots = dots.view(*padded.shape[:2], *feats.shape[1:3])
                picked = dots[where].unsqueeze(1) * scale
                for b, part in zip(members, picked.split(sizes)):
                    target[b] = part
        return logits, (aux if with_aux else None)

    @staticmethod
    def _assemble(tiles_hwc: Tensor, index: List[int], rows: int,
                  cols: int) -> Tensor:
        """Gather row-major tiles into conversation grids.

        Args:
            tiles_hwc (Tensor): Per-tile maps, shape (n, h, w, C).
            index (list[int]): Tile indices, G conversations x rows*cols.
            rows / cols (int): Tile grid.

        Returns:
            Tensor: Shape (G, rows*h, cols*w, C).
        """
        _, h, w, c = tiles_hwc.shape
        if index == list(range(len(tiles_hwc))):
            x = tiles_hwc  # the usual case: one tile each, all of them
        else:
            x = tiles_hwc.index_select(
                0, torch.as_tensor(index, device=tiles_hwc.device))
        if rows == cols == 1:
            return x
        x = x.view(-1, rows, cols, h, w, c).transpose(2, 3)
        return x.reshape(-1, rows * h, cols * w, c)

    def _check_outputs(self, out: MLLMOutputs) -> None:
        if out.uncompressed_embeds is None:
            raise ValueError(
                'Self1EHead needs MLLMOutputs.uncompressed_embeds: run the '
                'backbone with uncompressed_vision=True (RefSegmentor does, '
                'as the head declares needs_uncompressed_vision).')
        vit, llm = tuple(out.vit_grid), tuple(out.llm_grid)
        if vit != (llm[0] * self.FACTOR, llm[1] * self.FACTOR):
            raise ValueError(
                'Self1EHead undoes a pixel shuffle of 0.5; the backbone maps '
                f'a {vit} ViT grid to a {llm} LLM grid.')

    @staticmethod
    def tile_layouts(data_samples: Sequence,
                     out: MLLMOutputs) -> List[TileLayout]:
        """(first tile, rows, cols) of each conversation.

        The grid comes from the sample's ``tile_grid`` (rows, cols); a
        trailing global thumbnail (``num_tiles == rows*cols + 1``) is left
        out of the pixel maps (SELF1E runs without one).
        """
        counts = torch.bincount(out.tile_to_sample,
                                minlength=len(data_samples)).tolist()
        layouts, first = [], 0
        for sample, n in zip(data_samples, counts):
            rows, cols = sample.metainfo.get('tile_grid', (1, 1))
            if n == 1:
                rows, cols = 1, 1
            elif n not in (rows * cols, rows * cols + 1):
                raise ValueError(
                    f'{n} tiles do not fit the tile_grid {(rows, cols)} of '
                    f'{sample.metainfo.get("img_path")}.')
            layouts.append((first, rows, cols))
            first += n
        return layouts

    # --------------------------------------------------------------- loss
    def _target_size(self, size: Tuple[int, int]) -> Tuple[int, int]:
        h, w = size
        short = min(h, w)
        if self.gt_short_side is None or short <= self.gt_short_side:
            return h, w
        return (h * self.gt_short_side // short,
                w * self.gt_short_side // short)

    def loss_by_outputs(self, out: MLLMOutputs, gt_masks: List[Tensor],
                        data_samples: Sequence,
                        feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """BCE + Dice on the full and auxiliary logits of every ``[SEG]``.

        GT masks (soft after the optional short-side resize) and bilinearly
        up-sampled logits meet at the GT's aspect ratio; losses are summed
        over masks and divided by :attr:`loss_normalizer`.

        Args:
            out (MLLMOutputs): Backbone outputs.
            gt_masks (list[Tensor]): GT (H, W) of every ``[SEG]`` slot, in
                slot order (the segmentor matches them).
            data_samples (Sequence[RefSegDataSample]): The batch (tile
                grids).
            feats: Unused.

        Returns:
            dict[str, Tensor]: One scalar per loss name, plus the same names
            with ``_aux`` when ``aux_loss_weight`` > 0.
        """
        names = list(self.loss_mask)
        if self.aux_loss_weight:
            names += [n + self.AUX_SUFFIX for n in self.loss_mask]
        if len(out.seg_states) == 0:
            # Keep every head parameter in the graph (DDP).
            zero = sum(p.sum() * 0. for p in self.parameters())
            return {name: zero for name in names}
        with_aux = bool(self.aux_loss_weight)
        logits, aux = self.forward(out,
                                   self.tile_layouts(data_samples, out),
                                   with_aux=with_aux)
        # [SEG] slots are ordered by conversation: regroup their GT.
        counts = torch.bincount(out.seg_to_sample,
                                minlength=len(data_samples)).tolist()
        gts, first = [], 0
        for k in counts:
            gts.append(torch.stack(gt_masks[first:first + k]) if k else ())
            first += k
        # Conversations whose logits and GT share sizes are scored in one
        # call (see LightMaskDecoderHead.loss_by_feat).
        groups: Dict[tuple, List[int]] = {}
        for b, gt in enumerate(gts):
            if len(gt):
                key = (tuple(gt.shape[-2:]), tuple(logits[b].shape[-2:]))
                groups.setdefault(key, []).append(b)
        totals = {name: 0. for name in names}
        for (gt_size, _), members in groups.items():
            size = self._target_size(gt_size)
            target = torch.cat([gts[b] for b in members
                                ]).to(logits[members[0]].device,
                                      torch.float32)[:, None]
            if size != gt_size:
                target = F.interpolate(target,
                                       size=size,
                                       mode='bilinear',
                                       align_corners=False)
            pairs = [('', logits)]
            if with_aux:
                pairs.append((self.AUX_SUFFIX, aux))
            for suffix, maps in pairs:
                pred = F.interpolate(torch.cat([maps[b] for b in members]),
                                     size=size,
                                     mode='bilinear',
                                     align_corners=False).float()
                for name, loss in self.loss_mask.items():
                    # Group mean x group size = sum over its masks.
                    totals[name + suffix] = totals[name + suffix] + loss(
                        pred, target) * len(target)
        num_masks = sum(len(g) for g in gts)
        norm = len(data_samples) if self.loss_normalizer == 'rows' \
            else num_masks
        losses = {}
        for name in names:
            weight = self.aux_loss_weight \
                if name.endswith(self.AUX_SUFFIX) else 1.0
            losses[name] = totals[name] * (weight / norm)
        return losses

    # ------------------------------------------------------------ predict
    def predict_by_outputs(self, out: MLLMOutputs, data_samples: Sequence,
                           feats: Optional[Tensor] = None) -> List[Tensor]:
        """Teacher-forced logits of each conversation's ``[SEG]`` slots.

        Returns:
            list[Tensor]: per conversation (K_b, 1, 2*H0, 2*W0), see
            :meth:`forward`; the segmentor resizes them to the image and
            thresholds (0.5 on the sigmoid is the original's logit > 0).
        """
        logits, _ = self.forward(out, self.tile_layouts(data_samples, out))
        return logits
