# Copyright (c) mmrefseg contributors.
"""An MMSeg ``EncoderDecoder`` whose decode head also reads a text state."""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.encoder_decoder import EncoderDecoder
from mmseg.structures import SegDataSample
from torch import Tensor

from mmrefseg.registry import MODELS

SampleList = List[SegDataSample]


@MODELS.register_module()
class TextEncoderDecoder(EncoderDecoder):
    """Referring segmentation with an MMSeg backbone and a text encoder.

    Everything MMSeg's ``EncoderDecoder`` does is kept (backbone, optional
    neck, decode head, auxiliary heads on the image features); in addition
    a ``text_encoder`` turns each expression into a sentence state, and the
    decode head (e.g. :class:`TextQueryDecodeHead`) predicts one mask per
    expression from ``extract_head_inputs``. The batch comes from
    :class:`ImageTextDataPreProcessor` (``inputs`` is a dict).

    Predictions follow the referring contract of ``RefSegMetric``:
    ``pred_sem_seg.data`` [K, H, W] at the original size (one channel per
    expression, order of ``texts``), ``seg_logits`` the probabilities and
    metainfo ``pred_no_target`` (all False: the model always answers).

    Args:
        backbone (dict): MMSeg backbone config.
        decode_head (dict): Text-query decode head config;
            ``text_channels`` is filled from the text encoder when absent.
        text_encoder (dict): Text encoder config, e.g. ``HFTextEncoder``;
            it must expose ``embed_dims``.
        neck, auxiliary_head, train_cfg, pretrained, init_cfg: As MMSeg's
            ``EncoderDecoder``. Auxiliary heads read the image features.
        test_cfg (dict, optional): ``threshold`` on sigmoid probabilities
            (default: the decode head's ``threshold``).
        data_preprocessor (dict): :class:`ImageTextDataPreProcessor`
            config.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 text_encoder: dict,
                 neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            # Our registry first, so that no default scope is needed.
            data_preprocessor = MODELS.build(data_preprocessor)
        text_encoder = MODELS.build(text_encoder)
        decode_head = dict(decode_head)
        decode_head.setdefault('text_channels', text_encoder.embed_dims)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.text_encoder = text_encoder
        tokenizer = getattr(self.data_preprocessor, 'tokenizer', None)
        vocab = getattr(text_encoder, 'vocab_size', None)
        if tokenizer is not None and vocab is not None and \
                len(tokenizer) != vocab:
            raise ValueError(
                f'The data preprocessor tokenizes into {len(tokenizer)} ids '
                f'but the text encoder has {vocab}; give both the same '
                'tokenizer config')

    def extract_head_inputs(self, inputs: dict) -> dict:
        """Image features and sentence states, the decode head's input.

        Args:
            inputs (dict): ``imgs`` [B, 3, H, W], ``input_ids`` [Q, L],
                ``attention_mask`` [Q, L], ``text_to_image`` [Q].

        Returns:
            dict: ``img_feats`` (list of [B, C_i, H_i, W_i]),
            ``text_embeds`` [Q, C_t], ``text_to_image`` [Q].
        """
        return dict(
            img_feats=self.extract_feat(inputs['imgs']),
            text_embeds=self.text_encoder(inputs['input_ids'],
                                          inputs['attention_mask']),
            text_to_image=inputs['text_to_image'])

    def loss(self, inputs: dict, data_samples: SampleList) -> dict:
        """Decode-head losses (``decode.``) plus auxiliary ones (``aux.``)."""
        head_inputs = self.extract_head_inputs(inputs)
        losses = self._decode_head_forward_train(head_inputs, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(
                head_inputs['img_feats'], data_samples))
        return losses

    def _forward(self, inputs: dict,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """Raw mask logits, (Q, 1, h, w)."""
        return self.decode_head.forward(self.extract_head_inputs(inputs))

    def encode_decode(self, inputs: dict,
                      batch_img_metas: List[dict]) -> Tensor:
        """Mask logits of every query at the batch's input size,
        (Q, 1, H, W)."""
        logits = self.decode_head.predict(
            self.extract_head_inputs(inputs), batch_img_metas, self.test_cfg)
        return F.interpolate(logits, size=inputs['imgs'].shape[-2:],
                             mode='bilinear',
                             align_corners=self.align_corners)

    def predict(self, inputs: dict,
                data_samples: Optional[SampleList] = None) -> SampleList:
        """One mask per expression at each image's original size."""
        if data_samples is None:
            raise ValueError('TextEncoderDecoder.predict needs the data '
                             'samples (their texts and shapes)')
        metas = [sample.metainfo for sample in data_samples]
        logits = self.encode_decode(inputs, metas)
        return self.postprocess_result(logits, data_samples,
                                       inputs['text_to_image'])

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: SampleList,
                           text_to_image: Optional[Tensor] = None
                           ) -> SampleList:
        """Crop the padding, resize to the original size and threshold.

        Args:
            seg_logits (Tensor): (Q, 1, H, W) logits at the input size.
            data_samples (list[SegDataSample]): Samples to fill, with
                metainfo ``img_shape`` and ``ori_shape``.
            text_to_image (Tensor): (Q,) image index of each query.

        Returns:
            list[SegDataSample]: With ``seg_logits`` (probabilities,
            [K, H0, W0]), ``pred_sem_seg`` ([K, H0, W0] uint8) and metainfo
            ``pred_no_target``.
        """
        thr = (self.test_cfg or {}).get('threshold',
                                        self.decode_head.threshold)
        for b, sample in enumerate(data_samples):
            idx = torch.nonzero(text_to_image == b).flatten()
            img_h, img_w = sample.metainfo['img_shape'][:2]
            ori_h, ori_w = sample.metainfo['ori_shape'][:2]
            logits = seg_logits[idx, :, :img_h, :img_w].float()
            probs = F.interpolate(logits, size=(ori_h, ori_w),
                                  mode='bilinear',
                                  align_corners=self.align_corners)[:, 0]
            probs = probs.sigmoid()
            sample.set_data(dict(
                seg_logits=PixelData(data=probs),
                pred_sem_seg=PixelData(data=(probs > thr).to(torch.uint8))))
            sample.set_metainfo(dict(pred_no_target=[False] * len(idx)))
        return data_samples
