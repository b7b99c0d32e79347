# Copyright (c) mmrefseg contributors.
"""Batching of tiles and token sequences for the MLLM segmentors."""
from typing import Optional

import torch
from mmengine.model import BaseDataPreprocessor

from mmrefseg.registry import MODELS

IGNORE_INDEX = -100


@MODELS.register_module()
class RefSegDataPreProcessor(BaseDataPreprocessor):
    """Stack tiles and pad token sequences; keep the configured dtype.

    MMSeg's ``SegDataPreProcessor`` casts images to float32 and asserts equal
    image sizes at test time; neither fits tiles + text. Images are already
    normalised by ``InternVLImageTransform``.

    Args:
        pad_token_id (int): id written into padding (masked out anyway).
        pixel_dtype (str, optional): cast ``pixel_values`` to this dtype
            ('bfloat16' on GPU); default keeps float32.
        padding_side (str): 'right' for teacher-forced training/eval.

    Returns (of ``forward``): ``dict(inputs=dict(pixel_values [N,3,S,S],
    input_ids [B,L], attention_mask [B,L], labels [B,L], num_tiles list,
    prompt_lengths list), data_samples=list)``.
    """

    def __init__(self,
                 pad_token_id: int = 0,
                 pixel_dtype: Optional[str] = None,
                 padding_side: str = 'right') -> None:
        super().__init__()
        if padding_side not in ('left', 'right'):
            raise ValueError(f'padding_side must be left/right, got '
                             f'{padding_side}')
        self.pad_token_id = pad_token_id
        self.pixel_dtype = getattr(torch, pixel_dtype) if pixel_dtype else None
        self.padding_side = padding_side

    @staticmethod
    def pad_sequences(seqs, value: int, side: str = 'right') -> torch.Tensor:
        """Pad 1-D tensors to [B, max_len] with ``value``."""
        length = max(len(s) for s in seqs)
        out = seqs[0].new_full((len(seqs), length), value)
        for i, s in enumerate(seqs):
            if side == 'right':
                out[i, :len(s)] = s
            else:
                out[i, length - len(s):] = s
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, dict):
            if torch.is_tensor(inputs['input_ids']):  # already batched
                return data
            # pseudo_collate turns a list of dicts into a dict of lists.
            inputs = [dict(zip(inputs, values))
                      for values in zip(*inputs.values())]
        ids = [x['input_ids'] for x in inputs]
        lengths = torch.as_tensor([len(x) for x in ids])
        input_ids = self.pad_sequences(ids, self.pad_token_id,
                                       self.padding_side)
        labels = self.pad_sequences([x['labels'] for x in inputs],
                                    IGNORE_INDEX, self.padding_side)
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        if self.padding_side == 'right':
            attention_mask = positions < lengths.unsqueeze(1)
        else:
            attention_mask = positions >= (input_ids.shape[1] -
                                           lengths).unsqueeze(1)
        pixel_values = torch.cat([x['pixel_values'] for x in inputs])
        if self.pixel_dtype is not None:
            pixel_values = pixel_values.to(self.pixel_dtype)
        batch = dict(
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask.long().to(input_ids.device),
            labels=labels,
            num_tiles=[int(x['pixel_values'].shape[0]) for x in inputs],
            prompt_lengths=[int(x.get('prompt_length', 0)) for x in inputs])
        return dict(inputs=batch, data_samples=data.get('data_samples'))
