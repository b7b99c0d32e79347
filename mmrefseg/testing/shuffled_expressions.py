# Copyright (c) mmrefseg contributors.
"""A control dataset: each expression swapped for another object's."""
import copy
from typing import Dict, List, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmrefseg.registry import DATASETS


@DATASETS.register_module()
class ShuffledExpressionsDataset:
    """Wrap a test-mode REFER dataset, giving each sample a wrong expression.

    Every sample keeps its image and ground-truth mask but its expression is
    replaced by a sentence that refers to a *different* object of the same
    image (chosen deterministically from ``seed``). A model that reads the
    text must then score far lower than on the real expressions; one that
    ignores it scores the same. Samples whose image has no other referred
    object are dropped.

    Args:
        dataset (dict | BaseDataset): a test-mode ``RefCOCODataset`` (or
            config); its pipeline is applied after the swap.
        seed (int): seed of the choice of replacement sentence.
    """

    def __init__(self, dataset: Union[dict, BaseDataset], seed: int = 0):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        if getattr(dataset, 'test_grouping', 'expression') != 'expression':
            # Swapping needs one expression per sample to name "another
            # object's" sentence unambiguously.
            raise ValueError('ShuffledExpressionsDataset needs a dataset with '
                             "test_grouping='expression'")
        self.dataset = dataset
        self.metainfo = dataset.metainfo
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        by_image: Dict[int, List[int]] = {}
        for i, info in enumerate(infos):
            by_image.setdefault(info['img_id'], []).append(i)
        rng = np.random.default_rng(seed)
        self._samples = []
        for i, info in enumerate(infos):
            own = {e['ref_id'] for e in info['expressions']}
            others = [
                e for j in by_image[info['img_id']]
                for e in infos[j]['expressions']
                if e['ref_id'] not in own and not set(e['ann_ids']) &
                set(info['expressions'][0]['ann_ids'])
            ]
            if not others:
                continue
            swapped = copy.deepcopy(info)
            for expr in swapped['expressions']:
                expr['text'] = others[int(rng.integers(len(others)))]['text']
            self._samples.append(swapped)

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset.pipeline(copy.deepcopy(self._samples[idx]))

    def get_data_info(self, idx: int) -> dict:
        return copy.deepcopy(self._samples[idx])
