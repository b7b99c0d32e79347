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
        pad_token_id (int): id written into padding (masked out anyway).
        pixel_dtype (str, optional): cast ``pixel_values`` to this dtype
            ('bfloat16' on GPU); default keeps float32.
        padding_side (str): 'right' for teacher-forced training/eval.

    Returns (of ``forward``): ``dict(inputs=dict(pixel_values [N,3,S,S],
    input_ids [B,L], attention_mask [B,L], labels [B,L], num_tiles list,
    prompt_lengths list, images list of (H, W, 3) uint8 arrays or None),
    data_samples=list)``. B counts conversations: one per sample, except
    evaluation samples grouped by image (``test_grouping='image'``), which
    get one per expression; then ``inputs['conv_to_image']`` [B] (long)
    names each conversation's sample, ``pixel_values`` hold each sample's
    tiles once, ``num_tiles`` is per conversation and ``images`` per
    sample. Training batches are never grouped.
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
        """Write each sample's conversations into its inputs (and
        ``question``/``answer`` into its metainfo).

        A sample gets one conversation holding its K expressions, except an
        evaluation sample grouped by image (metainfo ``test_grouping`` =
        'image', set by the dataset or ``build_text_only_batch``): it gets K
        conversations of one expression each, which share its tiles.

        Args:
            inputs (list[dict]): per-sample inputs with ``pixel_values``;
                each gets ``conversations``, a list of dicts with
                ``input_ids``, ``labels`` ([L] int64) and ``prompt_length``.
            data_samples (Sequence[RefSegDataSample]): with ``texts`` and,
                optionally, ``gt_no_target`` and the metainfo
                ``template_seed``, ``question``/``answer`` (lists of K for a
                sample grouped by image), ``test_grouping``.
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
            num_tiles = int(x['pixel_values'].shape[0])
            question, answer = meta.get('question'), meta.get('answer')
            if not training and is_grouped_by_image(meta):
                texts = list(sample.texts)
                questions = _per_expression(question, len(texts), 'question',
                                            name)
                answers = _per_expression(answer, len(texts), 'answer', name)
                convs = [self.processor(
                    [text], num_tiles=num_tiles,
                    no_target=None if no_target is None else [no_target[k]],
                    question=questions[k], answer=answers[k],
                    training=False, name=f'{name} expression {k}')
                    for k, text in enumerate(texts)]
                sample.set_metainfo(dict(
                    question=[c['question'] for c in convs],
                    answer=[c['answer'] for c in convs]))
            else:
                conv = self.processor(
                    sample.texts, num_tiles=num_tiles, no_target=no_target,
                    question=question, answer=answer, training=training,
                    seed=meta.get('template_seed'), name=name)
                convs = [conv]
                sample.set_metainfo(dict(question=conv['question'],
                                         answer=conv['answer']))
            x['conversations'] = [
                dict(input_ids=c['input_ids'], labels=c['labels'],
                     prompt_length=c['prompt_length']) for c in convs]

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, dict):
            if torch.is_tensor(inputs.get('input_ids')):  # already batched
                return self.cast_data(data)
            # pseudo_collate turns a list of dicts into a dict of lists.
            inputs = [dict(zip(inputs, values))
                      for values in zip(*inputs.values())]
        samples = data.get('data_samples')
        if 'input_ids' in inputs[0]:
            for x in inputs:  # tokenised upstream: one conversation each
                x['conversations'] = [dict(
                    input_ids=x['input_ids'], labels=x['labels'],
                    prompt_length=x.get('prompt_length', 0))]
        else:
            self.tokenize(inputs, samples, training)
        data = self.cast_data(dict(inputs=inputs, data_samples=samples))
        inputs = data['inputs']
        convs = [c for x in inputs for c in x['conversations']]
        conv_to_image = [i for i, x in enumerate(inputs)
                         for _ in x['conversations']]
        ids = [c['input_ids'] for c in convs]
        lengths = torch.as_tensor([len(x) for x in ids])
        input_ids = self.pad_sequences(ids, self.pad_token_id,
                                       self.padding_side)
        labels = self.pad_sequences([c['labels'] for c in convs],
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
        tiles = [int(x['pixel_values'].shape[0]) for x in inputs]
        batch = dict(
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask.long().to(input_ids.device),
            labels=labels,
            num_tiles=[tiles[i] for i in conv_to_image],
            prompt_lengths=[int(c['prompt_length']) for c in convs],
            images=[x.get('image') for x in inputs])
        if len(convs) != len(inputs):
            # Samples grouped by image: their tiles are in pixel_values
            # once, shared by their conversations (RefSegmentor.predict).
            batch['conv_to_image'] = torch.as_tensor(
                conv_to_image, device=input_ids.device)
        return dict(inputs=batch, data_samples=data['data_samples'])


def is_grouped_by_image(metainfo: dict) -> bool:
    """Whether an evaluation sample is written as one conversation per
    expression sharing the image (``test_grouping='image'``)."""
    return metainfo.get('test_grouping') == 'image'


def _per_expression(value, num: int, key: str, name: str) -> list:
    """The K per-expression entries of a pipeline-written ``question`` or
    ``answer`` (a list of K, or one string for K = 1); Nones without one."""
    if value is None:
        return [None] * num
    if isinstance(value, str):
        value = [value]
    if len(value) != num:
        raise ValueError(f'{name}: its {key} has {len(value)} entries for '
                         f'{num} expressions grouped by image; the pipeline '
                         'must write one per expression (Text4SegAnswer '
                         "does with test_grouping='image').")
    return list(value)
