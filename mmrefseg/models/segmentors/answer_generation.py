# Copyright (c) mmrefseg contributors.
"""Generation for RefSegmentor: answers written by the model itself."""
from typing import List, Tuple

import torch
from torch import Tensor
from transformers import StoppingCriteriaList

from ..utils.line_budget import LineBudget


class AnswerGenerationMixin:
    """The generation half of :class:`RefSegmentor`.

    Expects ``self.backbone`` (an ``InternVLBackbone`` with its
    ``processor``), ``self.data_preprocessor`` (for padding),
    ``self.decode_head`` (a ``BaseRefHead``), ``self.test_cfg`` and
    ``self._set_predictions``. Generation always stops at the processor's
    end-of-turn ids (``<|im_end|>`` and EOS).
    """

    @torch.no_grad()
    def generate_answers(self, inputs: dict, max_new_tokens: int,
                         max_lines: int = 0,
                         **gen_kwargs) -> Tuple[List[Tensor], Tensor]:
        """Generate each conversation's answer after its prompt.

        The prompt of sample ``b`` is the first ``prompt_lengths[b]`` tokens
        of ``input_ids[b]`` (right-padded batch). Generation is greedy by
        default and stops at the processor's end-of-turn ids
        (``<|im_end|>`` and EOS), the same in every path.

        Args:
            inputs (dict): Batch from ``RefSegDataPreProcessor``.
            max_new_tokens (int): Generation budget.
            max_lines (int): Stop a sequence at this many line breaks
                (:class:`LineBudget`); 0 disables it.
            **gen_kwargs: Further ``generate`` arguments.

        Returns:
            tuple: the prompts (list of 1-D tensors, without padding) and
            the new tokens [B, T] (padding after an early stop).
        """
        processor = self.backbone.processor
        lengths = [int(n) for n in inputs['prompt_lengths']]
        if min(lengths) <= 0:
            raise ValueError('Generation needs the prompt lengths that '
                             'RefSegDataPreProcessor writes.')
        mask = inputs.get('attention_mask')
        prompts = []
        for b, n in enumerate(lengths):
            ids = inputs['input_ids'][b, :n]
            prompts.append(ids[mask[b, :n].bool()] if mask is not None
                           else ids)
        pre = self.data_preprocessor
        left = pre.pad_sequences(prompts, processor.pad_token_id, 'left')
        left_mask = pre.pad_sequences(
            [torch.ones_like(p) for p in prompts], 0, 'left')
        kwargs = dict(max_new_tokens=max_new_tokens,
                      eos_token_id=processor.stop_token_ids)
        if max_lines > 0:
            kwargs['stopping_criteria'] = StoppingCriteriaList([
                LineBudget(processor.newline_counts(), left.shape[1],
                           max_lines)
            ])
        kwargs.update(gen_kwargs)
        new = self.backbone.generate(
            inputs['pixel_values'], left, left_mask,
            llm_attention=self.decode_head.llm_attention, **kwargs)
        return prompts, new

    def _predict_from_answers(self, inputs: dict,
                              data_samples: List) -> List:
        """Generate, let the head read masks from the answers, and write
        the predictions."""
        _, new = self.generate_answers(inputs,
                                       **self.decode_head.generation_cfg)
        return self._write_answer_predictions(
            new, data_samples, inputs.get('images'),
            inputs['input_ids'].device)

    def _write_answer_predictions(self, new: Tensor, data_samples: List,
                                  images, device) -> List:
        """Decode generated tokens [B, T], let the head read masks from the
        texts and write the predictions of the B conversations' samples."""
        texts = self.backbone.processor.decode_answers(new)
        preds = self.decode_head.predict_by_answers(texts, data_samples,
                                                    images)
        for sample, text, pred in zip(data_samples, texts, preds):
            masks = pred.masks.to(device)
            no_target = (~masks.flatten(1).any(1)).tolist()
            self._set_predictions(sample, masks.float(), masks, no_target)
            sample.generated_texts = [text] * len(no_target)
            sample.parse_status = pred.status
            sample.parse_repairs = pred.repairs
        return data_samples

    def _append_generated_answers(self, inputs: dict) -> dict:
        """Let the model write its answer, then re-run it teacher-forced."""
        prompts, new = self.generate_answers(
            inputs, max_new_tokens=self.test_cfg['max_new_tokens'])
        pad = self.backbone.processor.pad_token_id
        seqs = []
        for p, g in zip(prompts, new):
            g = g[g != pad]
            seqs.append(torch.cat([p, g]))
        ids = self.data_preprocessor.pad_sequences(seqs, pad, 'right')
        lengths = torch.as_tensor([len(s) for s in seqs], device=ids.device)
        mask = (torch.arange(ids.shape[1], device=ids.device)[None] <
                lengths[:, None]).long()
        out = dict(inputs)
        out.update(input_ids=ids, attention_mask=mask, labels=None)
        return out
