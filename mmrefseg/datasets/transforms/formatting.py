# Copyright (c) mmrefseg contributors.
"""Pack a referring sample into model ``inputs`` and a ``RefSegDataSample``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmrefseg.registry import TRANSFORMS
from mmrefseg.structures import RefSegDataSample


@TRANSFORMS.register_module()
class PackRefSegInputs(BaseTransform):
    """Pack tiles (and the original image) as ``inputs``, texts, ground
    truth and metadata as a :class:`RefSegDataSample`.

    No tokenizer here: the conversation is written and tokenised on the
    model side (``RefSegDataPreProcessor`` with the backbone's
    ``InternVLProcessor``). What the pipeline decides per sample travels in
    the metainfo: a ``template_seed`` for the random prompt templates of
    training (drawn here, from NumPy's generator that the dataloader seeds
    per worker, unless the pipeline wrote the ``answer`` itself), and
    ``question``/``answer`` when a transform wrote them (``Text4SegAnswer``).

    Required keys: ``pixel_values``, ``img``, and ``texts`` (or
    ``expressions`` with a ``text`` each).
    Optional keys: ``gt_masks`` (K, H, W), ``gt_bboxes`` (K, 4),
    ``no_target`` (K,), and every key in ``meta_keys`` that is present.

    Returns ``dict(inputs=dict(pixel_values [T, 3, S, S] float32, image
    (H, W, 3) uint8 RGB ndarray), data_samples=RefSegDataSample)``.

    Args:
        meta_keys (Sequence[str]): keys copied into the metainfo.
    """

    DEFAULT_META_KEYS = (
        'img_path', 'img_id', 'ori_shape', 'img_shape', 'ref_ids',
        'sent_ids', 'num_tiles', 'tile_grid', 'question', 'answer',
        'dataset_name', 'sample_idx', 'answer_grid', 'template_seed',
        'test_grouping')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = dict(
            pixel_values=torch.from_numpy(
                np.ascontiguousarray(results['pixel_values'])),
            image=results['img'])
        sample = RefSegDataSample()
        texts = results.get('texts')
        if texts is None:
            texts = [e['text'] for e in results['expressions']]
        sample.texts = [str(t) for t in texts]
        if 'gt_masks' in results:
            sample.gt_masks = torch.from_numpy(
                np.ascontiguousarray(results['gt_masks'])).to(torch.uint8)
        if 'gt_bboxes' in results:
            sample.gt_bboxes = torch.as_tensor(
                np.asarray(results['gt_bboxes'], dtype=np.float32))
        if 'no_target' in results:
            sample.gt_no_target = torch.as_tensor(
                np.asarray(results['no_target'], dtype=bool))
        if 'answer' not in results:
            # Same draw, at the same point of the pipeline, as the random
            # templates always had: training prompts stay reproducible.
            results['template_seed'] = int(np.random.randint(2**31))
        meta = {}
        for key in self.meta_keys:
            if key in results:
                value = results[key]
                if isinstance(value, np.ndarray):
                    value = value.tolist()
                meta[key] = value
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
