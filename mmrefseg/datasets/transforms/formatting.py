# Copyright (c) mmrefseg contributors.
"""Pack a referring sample into model ``inputs`` and a ``SegDataSample``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmrefseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackRefSegInputs(BaseTransform):
    """Pack tiles and tokens as ``inputs``, masks and metadata as data sample.

    Required keys: ``pixel_values``, ``input_ids``, ``labels``.
    Optional keys: ``gt_masks`` (K, H, W) → ``gt_sem_seg`` and every key in
    ``meta_keys`` that is present.

    Returns ``dict(inputs=dict(pixel_values, input_ids, labels,
    prompt_length), data_samples=SegDataSample)``.
    """

    DEFAULT_META_KEYS = (
        'img_path', 'img_id', 'ori_shape', 'img_shape', 'texts', 'no_target',
        'gt_bboxes', 'ref_ids', 'sent_ids', 'num_tiles', 'tile_grid',
        'question', 'answer', 'dataset_name', 'sample_idx', 'answer_grid')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = dict(
            pixel_values=torch.from_numpy(
                np.ascontiguousarray(results['pixel_values'])),
            input_ids=torch.from_numpy(results['input_ids']),
            labels=torch.from_numpy(results['labels']),
            prompt_length=int(results.get('prompt_length', 0)))
        sample = SegDataSample()
        if 'gt_masks' in results:
            masks = torch.from_numpy(
                np.ascontiguousarray(results['gt_masks'])).to(torch.uint8)
            sample.gt_sem_seg = PixelData(data=masks)
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
