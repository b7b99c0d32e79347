# Copyright (c) mmrefseg contributors.
"""The declared interface between :class:`RefSegmentor` and its decode
head."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.model import BaseModule
from torch import Tensor

from mmrefseg.structures import MLLMOutputs

#: Where a head's masks come from (its ``mask_source``).
MASK_SOURCES = ('features', 'outputs', 'answers')
#: How "no target" is decided (its ``no_target_rule``).
NO_TARGET_RULES = ('rej_token', 'empty_mask')


class AnswerPrediction(NamedTuple):
    """Masks read from one sample's generated answers.

    Attributes:
        masks (Tensor): bool [K, H, W] at the original image size.
        status (list[str]): parse status per expression ('ok' or the
            decoder's most severe repair).
        repairs (list[list[str]]): every repair per expression.
    """

    masks: Tensor
    status: List[str]
    repairs: List[List[str]]


class BaseRefHead(BaseModule, metaclass=ABCMeta):
    """What :class:`RefSegmentor` may call on a decode head, and what the
    head declares about itself.

    Only the segmentor calls the backbone (forward and ``generate``); a head
    gets :class:`MLLMOutputs`, the batch's data samples (texts, tile grids,
    sizes) and, for answer heads, the generated texts and original images.
    It never sees the backbone, a tokenizer or the disk.

    Declarations (class attributes, or instance attributes set from the
    head's options):

    - ``mask_source``: 'features' -- the segmentor gives the neck's fused
      features of each conversation's global view (``feats``) and the
      head reads the ``[SEG]`` states (MLLMSeg's decoder); 'outputs' --
      the head reads :class:`MLLMOutputs` itself (SELF1E); 'answers' --
      masks are decoded from generated text (:meth:`predict_by_answers`,
      Text4Seg).
    - ``llm_attention``: the LLM attention policy the backbone runs,
      'causal', 'dual_perception' or 'image_bidirectional'.
    - ``needs_uncompressed_vision``: the backbone adds
      :attr:`MLLMOutputs.uncompressed_embeds`.
    - ``no_target_rule``: 'rej_token' -- the model's ``[REJ]``/``[SEG]``
      answer decides (``test_cfg.use_rej``); 'empty_mask' -- an empty
      predicted mask is the "no target" answer.
    - ``generation_cfg``: for answer heads, how the segmentor generates:
      ``max_new_tokens``, ``max_lines`` (stop a sequence at that many line
      breaks, 0 = off) and extra ``generate`` arguments. Generation always
      stops at the processor's end-of-turn ids (``<|im_end|>``, EOS).

    For 'features' and 'outputs' heads, the segmentor matches ground truth
    to ``[SEG]`` slots, resizes the returned logits to each image and
    thresholds them (one post-processing for every head).
    """

    mask_source: str = 'outputs'
    llm_attention: str = 'causal'
    needs_uncompressed_vision: bool = False
    no_target_rule: str = 'rej_token'
    generation_cfg: Optional[dict] = None

    @abstractmethod
    def loss_by_outputs(self, out: MLLMOutputs, gt_masks: List[Tensor],
                        data_samples: Sequence,
                        feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Mask losses of a training batch.

        Args:
            out (MLLMOutputs): backbone outputs.
            gt_masks (list[Tensor]): GT mask [H_q, W_q] of every ``[SEG]``
                slot, in slot order (empty for answer heads, whose only
                loss is the segmentor's ``loss_lm``).
            data_samples (Sequence[RefSegDataSample]): the batch's samples.
            feats (Tensor, optional): [B, C, h, w] neck features of each
                conversation's global view ('features' heads).

        Returns:
            dict[str, Tensor]: named scalar losses. With no ``[SEG]`` slot
            in the batch, zeros that keep every parameter in the graph.
        """

    @abstractmethod
    def predict_by_outputs(self, out: MLLMOutputs, data_samples: Sequence,
                           feats: Optional[Tensor] = None) -> List[Tensor]:
        """Mask logits of every ``[SEG]`` slot, per conversation.

        Args:
            out (MLLMOutputs): backbone outputs.
            data_samples (Sequence[RefSegDataSample]): the batch's samples.
            feats (Tensor, optional): as in :meth:`loss_by_outputs`.

        Returns:
            list[Tensor]: per conversation, [K_b, 1, h, w] logits of its
            K_b ``[SEG]`` slots in order, at the head's resolution.
        """

    def predict_by_answers(self, answers: Sequence[str],
                           data_samples: Sequence,
                           images: Optional[Sequence[np.ndarray]] = None
                           ) -> List[AnswerPrediction]:
        """Masks from generated answers ('answers' heads).

        Args:
            answers (Sequence[str]): one generated answer per conversation.
            data_samples (Sequence[RefSegDataSample]): their samples.
            images (Sequence[np.ndarray], optional): original RGB images
                (H, W, 3) uint8, e.g. for a mask refiner.

        Returns:
            list[AnswerPrediction]: one per conversation.
        """
        raise NotImplementedError(
            f'{type(self).__name__} predicts from backbone outputs '
            f"(mask_source={self.mask_source!r}), not from answers.")

    def validate_declarations(self) -> None:
        """Raise on a declaration outside the known values."""
        if self.mask_source not in MASK_SOURCES:
            raise ValueError(f'{type(self).__name__}.mask_source must be one '
                             f'of {MASK_SOURCES}, got {self.mask_source!r}')
        if self.no_target_rule not in NO_TARGET_RULES:
            raise ValueError(f'{type(self).__name__}.no_target_rule must be '
                             f'one of {NO_TARGET_RULES}, got '
                             f'{self.no_target_rule!r}')
        if (self.mask_source == 'answers') != (self.generation_cfg
                                                is not None):
            raise ValueError(f'{type(self).__name__}: a head predicts from '
                             'answers exactly when it has a generation_cfg.')
