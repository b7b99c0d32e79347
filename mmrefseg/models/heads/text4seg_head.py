# Copyright (c) mmrefseg contributors.
"""Text4Seg: the MLLM writes the mask as text, no mask decoder."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmrefseg.codecs import (
    ANSWER_FORMATS,
    BACKGROUND,
    DecodeResult,
    decode_answer,
    decode_full_answer,
)
from mmrefseg.registry import MODELS
from mmrefseg.structures import MLLMOutputs
from ..utils.nearest_upsample import nearest_upsample_grid
from ..utils.sam_refiner import SamMaskRefiner
from .base_ref_head import AnswerPrediction, BaseRefHead

UPSAMPLE_MODES = ('nearest', 'bilinear')


def _grid_hw(grid_size: Union[int, Sequence[int]]):
    if isinstance(grid_size, int):
        grid_size = (grid_size, grid_size)
    h, w = (int(v) for v in grid_size)
    if h < 1 or w < 1:
        raise ValueError(f'grid_size must be positive, got {grid_size!r}')
    return h, w


@MODELS.register_module()
class Text4SegHead(BaseRefHead):
    """Semantic descriptors as the answer text (Text4Seg).

    The head owns no trainable weights. Training is the LLM's next-token
    loss on the descriptor answer written by ``Text4SegAnswer`` (the
    segmentor's ``loss_lm``), so :meth:`loss_by_outputs` adds nothing.
    At prediction the segmentor generates the answer greedily with the KV
    cache (``generation_cfg``, stopping at the end of the turn); this head
    decodes it with the tolerant R-RLE parser and upsamples the ``(h, w)``
    grid to the original image; multi-target and no-target answers need
    nothing special, they are just other grids. An optional SAM refiner
    then sharpens non-empty masks, on the original image from the batch.
    An empty mask is the "no target" answer.

    Args:
        grid_size (int | Sequence[int]): Descriptor grid ``(h, w)``, the
            same as the data pipeline's ``Text4SegAnswer``. Defaults to 16.
        max_new_tokens (int): Generation budget. The segmentor's
            ``test_cfg.max_new_tokens`` is meant for short ``[SEG]`` answers
            and is ignored here. A 16x16 R-RLE answer takes ~150 tokens on
            RefCOCO; the reference allows 3069. Defaults to 1024.
        background (str): Background label. Defaults to 'others'.
        strict_label (bool): Count only cells labelled with the query
            expression as foreground; by default any label but the
            background is, as in the reference decoder. Defaults to False.
        upsample_mode (str): ``'nearest'`` (the reference) or
            ``'bilinear'`` (grid upsampled as 0/1 floats, then > 0.5).
            Defaults to 'nearest'.
        refiner (dict, optional): ``SamMaskRefiner`` config. It refines on
            the batch's original image. Defaults to None.
        max_lines (int, optional): Stop a sequence at this many line breaks
            (the segmentor's ``LineBudget``); None means ``h + 2``, one more
            than a complete answer has, 0 disables it. Defaults to None.
        generation_kwargs (dict, optional): Extra ``generate`` arguments
            (e.g. ``repetition_penalty``); greedy by default.
        answer_format (str): ``'rrle'`` or ``'full'`` (all ``h * w`` labels
            on one line), as written by ``Text4SegAnswer``. Defaults to
            'rrle'.
        bidirectional_image (bool): Let the LLM's image tokens see each
            other both ways (the 'image_bidirectional' policy), in training
            and in the generation prefill. Not the paper's (its LLM is
            causal): for a model whose image states were learned under
            SELF1E's dual-perception mask, e.g. the tiny two-stage recipe's
            stage 1. Defaults to False.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 grid_size: Union[int, Sequence[int]] = 16,
                 max_new_tokens: int = 1024,
                 background: str = BACKGROUND,
                 strict_label: bool = False,
                 upsample_mode: str = 'nearest',
                 refiner: Optional[dict] = None,
                 max_lines: Optional[int] = None,
                 generation_kwargs: Optional[dict] = None,
                 answer_format: str = 'rrle',
                 bidirectional_image: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.bidirectional_image = bool(bidirectional_image)
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f'answer_format must be one of {ANSWER_FORMATS},'
                             f' got {answer_format!r}')
        self.answer_format = answer_format
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f'upsample_mode must be one of {UPSAMPLE_MODES}'
                             f', got {upsample_mode!r}')
        self.grid_hw = _grid_hw(grid_size)
        self.max_new_tokens = int(max_new_tokens)
        self.background = background
        self.strict_label = strict_label
        self.upsample_mode = upsample_mode
        self.max_lines = self.grid_hw[0] + 2 if max_lines is None \
            else int(max_lines)
        self.generation_kwargs = dict(generation_kwargs or {})
        # A plain attribute, not a submodule: SAM stays out of state_dict.
        self.refiner: Optional[SamMaskRefiner] = None
        if refiner is not None:
            self.refiner = refiner if isinstance(refiner, SamMaskRefiner) \
                else MODELS.build(refiner)

    # -------------------------------------------------------- declarations
    mask_source = 'answers'
    no_target_rule = 'empty_mask'

    @property
    def llm_attention(self) -> str:
        """'image_bidirectional' with ``bidirectional_image=True``, else
        'causal' (the paper's)."""
        return 'image_bidirectional' if self.bidirectional_image \
            else 'causal'

    @property
    def generation_cfg(self) -> dict:
        """Greedy generation of the whole descriptor answer."""
        return dict(max_new_tokens=self.max_new_tokens,
                    max_lines=self.max_lines, **self.generation_kwargs)

    # ---------------------------------------------------------------- loss
    def loss_by_outputs(self, out: MLLMOutputs, gt_masks: List[Tensor],
                        data_samples: Sequence,
                        feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Nothing beyond the segmentor's ``loss_lm`` on the answer.

        Returns:
            dict: Empty.
        """
        return {}

    def predict_by_outputs(self, out: MLLMOutputs, data_samples: Sequence,
                           feats: Optional[Tensor] = None) -> List[Tensor]:
        raise NotImplementedError(
            'Text4SegHead predicts from generated answers '
            "(mask_source='answers'); RefSegmentor calls "
            'predict_by_answers.')

    # ------------------------------------------------------------- predict
    def decode_texts(self, texts: Sequence[str],
                     expressions: Optional[Sequence[str]] = None
                     ) -> List[DecodeResult]:
        """Parse generated answers into grids.

        Args:
            texts (Sequence[str]): Generated answers.
            expressions (Sequence[str], optional): Query of each answer,
                used with ``strict_label``.

        Returns:
            list[DecodeResult]: One per text, ``grid`` of shape ``(h, w)``.
        """
        results = []
        decode = decode_full_answer if self.answer_format == 'full' \
            else decode_answer
        for i, text in enumerate(texts):
            label = expressions[i] if (self.strict_label and
                                       expressions is not None) else None
            results.append(decode(text, self.grid_hw, label=label,
                                  background=self.background))
        return results

    def grid_to_mask(self, grid: Tensor, size: Sequence[int]) -> Tensor:
        """Upsample a descriptor grid to an image.

        Args:
            grid (Tensor): ``(h, w)`` bool grid.
            size (Sequence[int]): ``(H, W)``.

        Returns:
            Tensor: ``(H, W)`` bool mask. ``'nearest'`` is PyTorch's legacy
            nearest (source index ``floor(dst * in / out)``), as the
            reference, with integer indices: float32 interpolation reads
            the previous cell where a border falls on a pixel.
        """
        if self.upsample_mode == 'nearest':
            return nearest_upsample_grid(grid.bool(), size)
        x = F.interpolate(grid.float()[None, None], size=tuple(size),
                          mode='bilinear', align_corners=False)
        return x[0, 0] > 0.5

    def predict_by_answers(self, answers: Sequence[str],
                           data_samples: Sequence,
                           images: Optional[Sequence[np.ndarray]] = None
                           ) -> List[AnswerPrediction]:
        """Parse each answer and paint its mask at the original size.

        Args:
            answers (Sequence[str]): One generated answer per conversation.
            data_samples (Sequence[RefSegDataSample]): One per
                conversation, each with one expression and ``ori_shape``.
            images (Sequence[np.ndarray], optional): Original RGB images,
                needed by the refiner.

        Returns:
            list[AnswerPrediction]: bool masks [1, H, W] with the parse
            status and repairs.
        """
        preds = []
        for b, (sample, text) in enumerate(zip(data_samples, answers)):
            meta = sample.metainfo
            exprs = list(sample.texts) if 'texts' in sample else [None]
            if len(exprs) != 1:
                raise ValueError(
                    f'Text4SegHead predicts one expression per conversation;'
                    f" {meta.get('img_path')} has {len(exprs)}.")
            result = self.decode_texts([text], exprs)[0]
            grid = torch.from_numpy(result.grid)
            if 'ori_shape' in meta:
                height, width = meta['ori_shape'][:2]
            else:
                height, width = self.grid_hw
            mask = self.grid_to_mask(grid, (height, width))
            if self.refiner is not None and mask.any():
                if images is None or images[b] is None:
                    raise ValueError(
                        'The SAM refiner needs the original image in the '
                        "batch (inputs['images'], packed by "
                        'PackRefSegInputs).')
                mask = self.refiner.refine(images[b], mask, grid).cpu()
            preds.append(AnswerPrediction(masks=mask[None],
                                          status=[result.status],
                                          repairs=[list(result.repairs)]))
        return preds
