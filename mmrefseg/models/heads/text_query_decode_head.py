# Copyright (c) mmrefseg contributors.
"""MLLMSeg's DSFF + light mask decoder as an MMSeg ``BaseDecodeHead``."""
from typing import Dict, List, Optional, Sequence

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.structures import SegDataSample
from torch import Tensor

from mmrefseg.registry import MODELS


@MODELS.register_module()
class TextQueryDecodeHead(BaseDecodeHead):
    """One mask per text query from two levels of an MMSeg backbone.

    The adapter that lets MLLMSeg's :class:`DSFFNeck` and
    :class:`LightMaskDecoderHead` sit in an MMSeg ``EncoderDecoder``
    (``TextEncoderDecoder``): the finer backbone level takes the place of the
    ViT states, the level of half its resolution the place of the LLM image
    states, and a sentence state (e.g. :class:`HFTextEncoder`'s) the place of
    the ``[SEG]`` state. Every width is explicit: ``in_channels`` are the two
    levels' widths, ``text_channels`` the sentence width; they fill
    ``vit_channels``/``llm_channels`` of ``fusion`` and ``llm_channels`` /
    ``embed_dims`` of ``mask_decoder``.

    Its input is a dict (``TextEncoderDecoder.extract_head_inputs``)::

        img_feats      list of backbone levels, each [B, C_i, H_i, W_i]
        text_embeds    [Q, text_channels]
        text_to_image  [Q] long, image index of each query

    Losses are the mask decoder's (``loss_mask``); MMSeg's ``loss_decode``,
    ``conv_seg`` and ``dropout`` of the base class are removed because one
    binary mask per query has no classes to score.

    Args:
        in_channels (Sequence[int]): Widths of the (fine, coarse) levels.
        in_index (Sequence[int]): Backbone output indices of those levels;
            the coarse one must be ``fusion.scale_factor`` times smaller.
        text_channels (int): Width of ``text_embeds``.
        fusion (dict): :class:`DSFFNeck` config without the input widths.
        mask_decoder (dict): :class:`LightMaskDecoderHead` config without
            ``llm_channels``/``embed_dims``; its ``patch_size`` must be the
            fine level's stride so masks come out at input resolution.
        threshold (float): Foreground threshold on sigmoid probabilities.
            Default: 0.5.
        align_corners (bool): MMSeg's resize flag. Default: False.
        init_cfg (dict, optional): MMEngine init config; None keeps the
            released inits of the fusion and decoder modules.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 in_index: Sequence[int],
                 text_channels: int,
                 fusion: dict,
                 mask_decoder: dict,
                 threshold: float = 0.5,
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        if len(in_channels) != 2 or len(in_index) != 2:
            raise ValueError('TextQueryDecodeHead reads two levels (fine, '
                             f'coarse); got in_channels={in_channels}, '
                             f'in_index={in_index}')
        fusion = self._with_widths(
            fusion, 'fusion',
            dict(vit_channels=in_channels[0], llm_channels=in_channels[1]))
        embed_dims = fusion.get('embed_dims', 1024)
        mask_decoder = self._with_widths(
            mask_decoder, 'mask_decoder',
            dict(llm_channels=text_channels, embed_dims=embed_dims))
        super().__init__(
            in_channels=list(in_channels),
            channels=embed_dims,
            num_classes=1,
            out_channels=1,
            threshold=threshold,
            in_index=list(in_index),
            input_transform='multiple_select',
            align_corners=align_corners,
            init_cfg=init_cfg)
        del self.conv_seg, self.loss_decode
        self.dropout = None
        self.text_channels = text_channels
        self.fusion = MODELS.build(fusion)
        self.mask_decoder = MODELS.build(mask_decoder)

    @staticmethod
    def _with_widths(cfg: dict, name: str, widths: Dict[str, int]) -> dict:
        """``cfg`` with ``widths`` filled in; a different given value is an
        error, since the two would disagree about one tensor."""
        cfg = dict(cfg)
        for key, value in widths.items():
            if key in cfg and cfg[key] != value:
                raise ValueError(
                    f'{name}.{key}={cfg[key]} contradicts the head, which '
                    f'gives it {value}; leave it out of the {name} config')
            cfg[key] = value
        return cfg

    def forward(self, inputs: dict) -> Tensor:
        """Mask logits of every query.

        Args:
            inputs (dict): ``img_feats``, ``text_embeds``, ``text_to_image``
                (see the class docstring).

        Returns:
            Tensor: (Q, 1, h_f * p, w_f * p) logits, (h_f, w_f) the fine
            level's grid and p the decoder's ``patch_size``.
        """
        fine, coarse = self._transform_inputs(inputs['img_feats'])
        fused = self.fusion(fine, coarse)
        return self.mask_decoder(fused, inputs['text_embeds'],
                                 inputs['text_to_image'])

    def loss(self, inputs: dict, batch_data_samples: List[SegDataSample],
             train_cfg: Optional[dict] = None) -> Dict[str, Tensor]:
        """Mask losses against each expression's GT mask.

        Args:
            inputs (dict): As :meth:`forward`.
            batch_data_samples (list[SegDataSample]): ``gt_sem_seg.data``
                [K_b, H_b, W_b] per sample, in query order.
            train_cfg (dict, optional): Unused.

        Returns:
            dict[str, Tensor]: The mask decoder's losses.
        """
        logits = self.forward(inputs)
        return self.loss_by_feat(logits, batch_data_samples)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: List[SegDataSample]
                     ) -> Dict[str, Tensor]:
        """Losses of (Q, 1, h, w) logits; GT masks keep their own size."""
        gt_masks = [
            mask for sample in batch_data_samples
            for mask in sample.gt_sem_seg.data
        ]
        return self.mask_decoder.loss_by_feat(seg_logits, gt_masks)

    def predict(self, inputs: dict, batch_img_metas: List[dict],
                test_cfg: Optional[dict] = None) -> Tensor:
        """Mask logits at the decoder's resolution, (Q, 1, h, w); the
        segmentor maps them back to each image."""
        return self.forward(inputs)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Identity: queries are not images, so MMSeg's batch resize does
        not apply (``TextEncoderDecoder.postprocess_result`` resizes)."""
        return seg_logits
