# Copyright (c) mmrefseg contributors.
"""Conversations, tokens and tiles of a batch for the MLLM segmentors."""
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmrefseg.registry import MODELS
from .processors import IGNORE_INDEX, InternVLProcessor


@MODELS.register_module()
class RefSegDataPreProcessor(BaseDataPreprocessor):
    """Tokenise each sample's conversation, pad, stack tiles, cast.

    The conversation of a sample (its expressions in the backbone's prompt
    style and chat template) is written and tokenised here by the
    backbone's :class:`InternVLProcessor`, which :class:`RefSegmentor`
    hands over (:attr:`processor`) after building the backbone. The data
    pipeline therefore carries no tokenizer. Training batches
    (``training=True``) get the training prompt (random templates seeded by
    each sample's ``template_seed``, ``[REJ]`` for no-target expressions);
    others the deterministic evaluation prompt. A batch whose inputs already
    hold ``input_ids`` (and ``labels``) is only padded.

    MMSeg's ``SegDataPreProcessor`` casts images to float32 and asserts equal
    image sizes at test time; neither fits tiles + text. Images are already
    normalised by ``InternVLImageTransform``.

    Args:
        pad_token_id (int): id written into padding (masked out anyway);
            the processor's pad id replaces it once attached.
        pixel_dtype (str, optional): cast ``pixel_values`` to this dtype
            ('bfloat16' on GPU); default keeps float32.
        padding_side (str): 'right' for teacher-forced training/eval.

    Returns (of ``forward``): ``dict(inputs=dict(pixel_values [N,3,S,S],
    input_ids [B,L], attention_mask [B,L], labels [B,L], num_tiles list,
    prompt_lengths list, images list of (H, W, 3) uint8 arrays or None),
    data_samples=list)``.
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
        self.processor: Optional[InternVLProcessor] = None

    def set_processor(self, processor: InternVLProcessor) -> None:
        """Attach the backbone's processor (done by ``RefSegmentor``)."""
        self.processor = processor
        self.pad_token_id = processor.pad_token_id

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

    def tokenize(self, inputs: List[dict], data_samples: Sequence,
                 training: bool) -> None:
        """Write ``input_ids``, ``labels``, ``prompt_length`` into each
        sample's inputs (and ``question``/``answer`` into its metainfo).

        Args:
            inputs (list[dict]): per-sample inputs with ``pixel_values``.
            data_samples (Sequence[RefSegDataSample]): with ``texts`` and,
                optionally, ``gt_no_target`` and the metainfo
                ``template_seed``, ``question``/``answer``.
            training (bool): training prompt or evaluation prompt.
        """
        if self.processor is None:
            raise RuntimeError(
                'RefSegDataPreProcessor has no processor to write the '
                'conversations with; build it inside a RefSegmentor (which '
                "attaches its backbone's) or call set_processor().")
        for x, sample in zip(inputs, data_samples):
            meta = sample.metainfo
            if 'texts' not in sample:
                raise KeyError(
                    f'Sample {meta.get("img_path")} has no texts; pack it '
                    'with PackRefSegInputs.')
            no_target = sample.gt_no_target.tolist() \
                if 'gt_no_target' in sample else None
            name = (f'image {meta.get("img_path")} '
                    f'(ref ids {meta.get("ref_ids")})')
            conv = self.processor(
                sample.texts, num_tiles=int(x['pixel_values'].shape[0]),
                no_target=no_target, question=meta.get('question'),
                answer=meta.get('answer'), training=training,
                seed=meta.get('template_seed'), name=name)
            x['input_ids'] = conv['input_ids']
            x['labels'] = conv['labels']
            x['prompt_length'] = conv['prompt_length']
            sample.set_metainfo(dict(question=conv['question'],
                                     answer=conv['answer']))

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, dict):
            if torch.is_tensor(inputs.get('input_ids')):  # already batched
                return self.cast_data(data)
            # pseudo_collate turns a list of dicts into a dict of lists.
            inputs = [dict(zip(inputs, values))
                      for values in zip(*inputs.values())]
        samples = data.get('data_samples')
        if 'input_ids' not in inputs[0]:
            self.tokenize(inputs, samples, training)
        data = self.cast_data(dict(inputs=inputs, data_samples=samples))
        inputs = data['inputs']
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
            prompt_lengths=[int(x.get('prompt_length', 0)) for x in inputs],
            images=[x.get('image') for x in inputs])
        return dict(inputs=batch, data_samples=data['data_samples'])
