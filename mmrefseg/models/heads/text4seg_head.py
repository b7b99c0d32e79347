# Copyright (c) mmrefseg contributors.
"""Text4Seg: the MLLM writes the mask as text, no mask decoder."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor
from transformers import StoppingCriteria, StoppingCriteriaList

from mmrefseg.codecs import (ANSWER_FORMATS, BACKGROUND, DecodeResult,
                             decode_answer, decode_full_answer)
from mmrefseg.registry import MODELS
from mmrefseg.utils.tokenizer import IM_END_TOKEN, token_id
from ..backbones.mllm_outputs import MLLMOutputs
from ..data_preprocessor import RefSegDataPreProcessor
from ..utils.nearest_upsample import nearest_upsample_grid
from ..utils.sam_refiner import SamMaskRefiner

SampleList = List[SegDataSample]
UPSAMPLE_MODES = ('nearest', 'bilinear')


def _grid_hw(grid_size: Union[int, Sequence[int]]):
    if isinstance(grid_size, int):
        grid_size = (grid_size, grid_size)
    h, w = (int(v) for v in grid_size)
    if h < 1 or w < 1:
        raise ValueError(f'grid_size must be positive, got {grid_size!r}')
    return h, w


def _stop_token_ids(tokenizer) -> List[int]:
    """End-of-turn ids: ``<|im_end|>`` (the chat format) and the EOS."""
    ids = {tokenizer.eos_token_id}
    try:
        ids.add(token_id(tokenizer, IM_END_TOKEN))
    except KeyError:
        pass
    return sorted(i for i in ids if i is not None and i >= 0)


class LineBudget(StoppingCriteria):
    """Stop a sequence once its new text holds ``max_lines`` line breaks.

    A well-formed answer has ``h + 1`` of them (the sentence before
    ``<seg>``, then one per row); past that only ``</seg>`` may follow, so
    a model that keeps writing rows is cut there instead of running to
    ``max_new_tokens``. Rows beyond ``h`` would be dropped by the decoder
    anyway.

    Args:
        newlines (Tensor): [V] line breaks in each token's text.
        prompt_length (int): Width of the (left-padded) prompt.
        max_lines (int): Line breaks that end a sequence.
    """

    def __init__(self, newlines: Tensor, prompt_length: int,
                 max_lines: int) -> None:
        self.newlines = newlines
        self.prompt_length = prompt_length
        self.max_lines = max_lines

    def __call__(self, input_ids: Tensor, scores=None, **kwargs) -> Tensor:
        new = input_ids[:, self.prompt_length:]
        table = self.newlines.to(new.device)
        counts = table[new.clamp(max=len(table) - 1)].sum(dim=1)
        return counts >= self.max_lines


@MODELS.register_module()
class Text4SegHead(BaseModule):
    """Semantic descriptors as the answer text (Text4Seg).

    The head owns no trainable weights. Training is the LLM's next-token
    loss on the descriptor answer written by ``Text4SegAnswer`` (the
    segmentor's ``loss_lm``), so :meth:`loss_mllm` adds nothing.
    Prediction generates the answer greedily with the KV cache, decodes it
    with the tolerant R-RLE parser and upsamples the ``(h, w)`` grid to the
    original image; multi-target and no-target answers need nothing
    special, they are just other grids. An optional SAM refiner then
    sharpens non-empty masks.

    Each prediction carries the metainfo ``pred_no_target`` (list[bool]),
    ``parse_status`` (list[str], ``'ok'`` or the decoder's most severe
    repair; read by ``RefSegMetric``), ``parse_repairs`` (list[list[str]])
    and ``generated_text`` (list[str], the raw answer).

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
        refiner (dict, optional): ``SamMaskRefiner`` config. The image is
            read from the sample's ``img_path``. Defaults to None.
        max_lines (int, optional): Stop a sequence at this many line breaks
            (see :class:`LineBudget`); None means ``h + 2``, one more than a
            complete answer has, 0 disables it. Defaults to None.
        generation_kwargs (dict, optional): Extra ``generate`` arguments
            (e.g. ``repetition_penalty``); greedy by default.
        answer_format (str): ``'rrle'`` or ``'full'`` (all ``h * w`` labels
            on one line), as written by ``Text4SegAnswer``. Defaults to
            'rrle'.
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
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
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
        self._newlines: Dict[int, Tensor] = {}
        # A plain attribute, not a submodule: SAM stays out of state_dict.
        self.refiner: Optional[SamMaskRefiner] = None
        if refiner is not None:
            self.refiner = refiner if isinstance(refiner, SamMaskRefiner) \
                else MODELS.build(refiner)

    # ---------------------------------------------------------------- loss
    def loss_mllm(self, out: MLLMOutputs, data_samples: SampleList,
                  backbone) -> Dict[str, Tensor]:
        """Nothing beyond the segmentor's ``loss_lm`` on the answer.

        Args:
            out (MLLMOutputs): Backbone outputs (unused).
            data_samples (list[SegDataSample]): Samples (unused).
            backbone (InternVLBackbone): The backbone (unused).

        Returns:
            dict: Empty.
        """
        return {}

    # ------------------------------------------------------------- predict
    @torch.no_grad()
    def generate_texts(self, inputs: dict, backbone) -> List[str]:
        """Greedy answers to the prompts of a batch.

        Args:
            inputs (dict): Batch from ``RefSegDataPreProcessor``; the prompt
                of sample ``b`` is the first ``prompt_lengths[b]`` tokens of
                ``input_ids[b]`` (right-padded).
            backbone (InternVLBackbone): Generates with its KV cache.

        Returns:
            list[str]: One decoded answer per sample, cut at the first
            end-of-turn token.
        """
        tokenizer = backbone.tokenizer
        lengths = [int(n) for n in inputs['prompt_lengths']]
        if min(lengths) <= 0:
            raise ValueError('Text4SegHead needs the prompt lengths from '
                             'BuildConversation (prompt_length > 0).')
        mask = inputs.get('attention_mask')
        prompts = []
        for b, n in enumerate(lengths):
            ids = inputs['input_ids'][b, :n]
            prompts.append(ids[mask[b, :n].bool()] if mask is not None
                           else ids)
        pad = tokenizer.pad_token_id
        left = RefSegDataPreProcessor.pad_sequences(prompts, pad, 'left')
        left_mask = RefSegDataPreProcessor.pad_sequences(
            [torch.ones_like(p) for p in prompts], 0, 'left')
        stop_ids = _stop_token_ids(tokenizer)
        gen_kwargs = dict(max_new_tokens=self.max_new_tokens,
                          eos_token_id=stop_ids)
        if self.max_lines > 0:
            gen_kwargs['stopping_criteria'] = StoppingCriteriaList([
                LineBudget(self._newline_table(tokenizer), left.shape[1],
                           self.max_lines)
            ])
        gen_kwargs.update(self.generation_kwargs)
        new_tokens = backbone.generate(inputs['pixel_values'], left,
                                       left_mask, **gen_kwargs)
        texts = []
        for row in new_tokens.tolist():
            ends = [k for k, t in enumerate(row) if t in stop_ids]
            row = row[:ends[0]] if ends else row
            # Sequences that finished early are padded to the batch's end.
            row = [t for t in row if t != pad]
            texts.append(tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def _newline_table(self, tokenizer) -> Tensor:
        """[V] line breaks in each token's text, computed once."""
        key = id(tokenizer)
        if key not in self._newlines:
            ids = [[i] for i in range(len(tokenizer))]
            texts = tokenizer.batch_decode(ids)
            self._newlines[key] = torch.tensor(
                [t.count('\n') for t in texts], dtype=torch.long)
        return self._newlines[key]

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

    def predict_mllm(self, inputs: dict, data_samples: SampleList, backbone,
                     test_cfg: Optional[dict] = None) -> SampleList:
        """Generate, parse and paint each sample's mask.

        Args:
            inputs (dict): Batch from ``RefSegDataPreProcessor``.
            data_samples (list[SegDataSample]): One per conversation, each
                with one expression (``texts`` of length 1) and
                ``ori_shape``.
            backbone (InternVLBackbone): The MLLM.
            test_cfg (dict, optional): The segmentor's test config (unused;
                see ``max_new_tokens``).

        Returns:
            list[SegDataSample]: ``data_samples`` with ``pred_sem_seg``
            (uint8 [1, H, W]), ``seg_logits`` (float 0/1 [1, H, W]) and the
            metainfo listed in the class docstring.
        """
        texts = self.generate_texts(inputs, backbone)
        device = inputs['input_ids'].device
        for sample, text in zip(data_samples, texts):
            meta = sample.metainfo
            exprs = list(meta.get('texts', [])) or [None]
            if len(exprs) != 1:
                raise ValueError(
                    f'Text4SegHead predicts one expression per conversation;'
                    f" {meta.get('img_path')} has {len(exprs)}.")
            result = self.decode_texts([text], exprs)[0]
            grid = torch.from_numpy(result.grid).to(device)
            if 'ori_shape' in meta:
                height, width = meta['ori_shape'][:2]
            else:
                height, width = self.grid_hw
            mask = self.grid_to_mask(grid, (height, width))
            if self.refiner is not None and mask.any():
                mask = self.refiner.refine(self._load_image(meta), mask,
                                           grid).to(device)
            no_target = not bool(mask.any())
            sample.set_data(dict(
                seg_logits=PixelData(data=mask[None].float()),
                pred_sem_seg=PixelData(data=mask[None].to(torch.uint8))))
            sample.set_metainfo(dict(
                pred_no_target=[no_target],
                parse_status=[result.status],
                parse_repairs=[list(result.repairs)],
                generated_text=[text]))
        return data_samples

    @staticmethod
    def _load_image(meta: dict):
        """The original RGB image of a sample, for the refiner."""
        from mmrefseg.datasets.transforms.loading import LoadRefImage
        if 'img_path' not in meta:
            raise KeyError('The SAM refiner needs img_path in the metainfo.')
        return LoadRefImage(check_size=False)(dict(
            img_path=meta['img_path']))['img']
