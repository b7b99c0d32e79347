# Copyright (c) mmrefseg contributors.
"""Images + referring expressions -> a batch for a text-conditioned MMSeg
segmentor (no chat template, no LLM)."""
from typing import List, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmrefseg.registry import MODELS
from mmrefseg.utils.tokenizer import TokenizerCfg, build_tokenizer


@MODELS.register_module()
class ImageTextDataPreProcessor(BaseDataPreprocessor):
    """Normalise and stack images; tokenise every sample's expressions.

    The pipeline carries expressions as text (``metainfo['texts']``, K per
    sample) and this preprocessor tokenises them on the model side, the way
    MMSeg's ``SegDataPreProcessor`` normalises images there.

    Output ``inputs`` (a dict, read by ``TextEncoderDecoder``)::

        imgs            FloatTensor [B, 3, H, W]  normalised
        input_ids       LongTensor  [Q, L]        Q = sum of K over samples
        attention_mask  LongTensor  [Q, L]
        text_to_image   LongTensor  [Q]           sample index of each text

    Args:
        tokenizer (str | dict): :func:`build_tokenizer` config; must equal
            the text encoder's.
        mean (Sequence[float]): Per-channel mean in the images' own order
            and 0-255 units (``LoadRefImage`` gives RGB).
        std (Sequence[float]): Per-channel std, same units.
        max_length (int): Expressions longer than this many tokens are cut.
            Default: 32.
    """

    def __init__(self,
                 tokenizer: TokenizerCfg,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 max_length: int = 32) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError('mean and std need 3 values each, got '
                             f'{mean} and {std}')
        self.tokenizer_cfg = tokenizer
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_length = max_length
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1),
                             False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Build the batch.

        Args:
            data (dict): ``inputs`` (list of [3, H, W] uint8 images, all of
                one size) and ``data_samples`` (``SegDataSample`` with
                metainfo ``texts``).
            training (bool): Unused; images are treated alike.

        Returns:
            dict: ``inputs`` (see the class docstring) and ``data_samples``.
        """
        data = self.cast_data(data)
        images: List[torch.Tensor] = list(data['inputs'])
        samples = data.get('data_samples')
        if samples is None:
            raise ValueError('ImageTextDataPreProcessor needs data_samples '
                             "with metainfo 'texts'")
        sizes = {tuple(img.shape[-2:]) for img in images}
        if len(sizes) > 1:
            paths = [s.metainfo.get('img_path') for s in samples]
            raise ValueError(
                f'Images of one batch must share a size (got {sorted(sizes)}'
                f' for {paths}); resize them in the pipeline, e.g. '
                "dict(type='Resize', scale=(S, S), keep_ratio=False)")
        imgs = torch.stack(images).float()
        imgs = (imgs - self.mean) / self.std
        texts, owners = [], []
        for b, sample in enumerate(samples):
            sample_texts = sample.metainfo.get('texts')
            if not sample_texts:
                raise KeyError(f"Sample {sample.metainfo.get('img_path')} "
                               "has no metainfo 'texts' (pack them with "
                               'PackRefImageInputs)')
            if 'gt_sem_seg' in sample and \
                    sample.gt_sem_seg.data.shape[0] != len(sample_texts):
                raise ValueError(
                    f"Sample {sample.metainfo.get('img_path')} has "
                    f'{len(sample_texts)} texts but '
                    f'{sample.gt_sem_seg.data.shape[0]} GT masks')
            texts.extend(sample_texts)
            owners.extend([b] * len(sample_texts))
            h, w = imgs.shape[-2:]
            sample.set_metainfo(dict(batch_input_shape=(h, w)))
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors='pt')
        inputs = dict(
            imgs=imgs,
            input_ids=tokens['input_ids'].to(imgs.device),
            attention_mask=tokens['attention_mask'].to(imgs.device),
            text_to_image=torch.tensor(owners, dtype=torch.long,
                                       device=imgs.device))
        return dict(inputs=inputs, data_samples=samples)

    def extra_repr(self) -> str:
        return (f'tokenizer={self.tokenizer_cfg}, '
                f'max_length={self.max_length}')
