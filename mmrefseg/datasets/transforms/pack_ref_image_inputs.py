# Copyright (c) mmrefseg contributors.
"""Pack a referring sample for an image-input MMSeg segmentor."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmrefseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackRefImageInputs(BaseTransform):
    """Image as ``inputs``, expressions as text, masks as ``gt_sem_seg``.

    The counterpart of MMSeg's ``PackSegInputs`` for referring samples read
    by a plain image backbone (``TextEncoderDecoder``): no conversation is
    built and nothing is tokenised here (the data preprocessor does it).

    Required keys: ``img`` (H, W, 3 uint8), ``texts`` (K str).
    Optional keys: ``gt_masks`` (K, H0, W0) -> ``gt_sem_seg`` (uint8), and
    every key of ``meta_keys`` that is present.

    Returns ``dict(inputs=uint8 Tensor[3, H, W], data_samples=SegDataSample)``.

    Args:
        meta_keys (Sequence[str]): Keys copied to the data sample's metainfo
            (numpy arrays become lists).
    """

    DEFAULT_META_KEYS = ('img_path', 'img_id', 'ori_shape', 'img_shape',
                         'scale_factor', 'texts', 'no_target', 'gt_bboxes',
                         'ref_ids', 'sent_ids', 'dataset_name', 'sample_idx')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack one sample.

        Args:
            results (dict): Output of the loading/resizing transforms.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        for key in ('img', 'texts'):
            if key not in results:
                raise KeyError(
                    f'PackRefImageInputs needs {key!r} in the results of '
                    f"{results.get('img_path')} (LoadRefImage adds 'img', "
                    "LoadRefMasks adds 'texts')")
        img = results['img']
        if img.ndim != 3:
            raise ValueError(f"Expected an (H, W, C) image for "
                             f"{results.get('img_path')}, got {img.shape}")
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0,
                                                                     1)))
        sample = SegDataSample()
        if 'gt_masks' in results:
            masks = np.ascontiguousarray(results['gt_masks'])
            sample.gt_sem_seg = PixelData(
                data=torch.from_numpy(masks).to(torch.uint8))
        meta = {}
        for key in self.meta_keys:
            if key in results:
                value = results[key]
                meta[key] = (value.tolist()
                             if isinstance(value, np.ndarray) else value)
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
