# Copyright (c) mmrefseg contributors.
"""A mixture of referring datasets sharing one pipeline."""
import copy
from typing import Callable, List, Sequence, Union

from mmengine.dataset import BaseDataset, Compose

from mmrefseg.registry import DATASETS


@DATASETS.register_module()
class MixedReferDataset:
    """Several REFER datasets behind one pipeline, mixed uniformly or not.

    MLLMSeg and LISA draw the source dataset *uniformly* for every sample,
    whatever its size (refclef, refcoco, refcoco+, refcocog), which
    ``ConcatDataset`` cannot express. With ``sampling='uniform'`` index ``i``
    reads dataset ``i % n`` at position ``(i // n) % len(dataset)``, and the
    length is ``n`` times the largest dataset, so one epoch visits every
    sample of the largest dataset once. ``sampling='concat'`` is plain
    concatenation.

    Because the pipeline lives here and not in the member datasets, a config
    can swap it with a dict merge (``dataset=dict(pipeline=...)``).

    Args:
        datasets (Sequence[dict | BaseDataset]): member datasets, built
            without pipelines.
        pipeline (Sequence[dict | Callable]): transforms for every sample.
        sampling (str): 'uniform' or 'concat'.
    """

    def __init__(self,
                 datasets: Sequence[Union[dict, BaseDataset]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 sampling: str = 'uniform') -> None:
        if sampling not in ('uniform', 'concat'):
            raise ValueError(f"sampling must be 'uniform' or 'concat', got "
                             f'{sampling!r}')
        self.datasets: List[BaseDataset] = [
            DATASETS.build(dict(d, pipeline=[])) if isinstance(d, dict) else d
            for d in datasets
        ]
        if not self.datasets:
            raise ValueError('MixedReferDataset needs at least one dataset.')
        self.pipeline = Compose(pipeline)
        self.sampling = sampling
        self.metainfo = copy.deepcopy(self.datasets[0].metainfo)
        self._sizes = [len(d) for d in self.datasets]
        self._offsets = [sum(self._sizes[:i]) for i in range(len(self._sizes))]

    def __len__(self) -> int:
        if self.sampling == 'uniform':
            return len(self.datasets) * max(self._sizes)
        return sum(self._sizes)

    def locate(self, idx: int):
        """(dataset index, sample index) of mixture index ``idx``."""
        if idx < 0:
            idx += len(self)
        if self.sampling == 'uniform':
            which = idx % len(self.datasets)
            return which, (idx // len(self.datasets)) % self._sizes[which]
        for which in reversed(range(len(self.datasets))):
            if idx >= self._offsets[which]:
                return which, idx - self._offsets[which]
        raise IndexError(idx)

    def get_data_info(self, idx: int) -> dict:
        which, local = self.locate(idx)
        return self.datasets[which].get_data_info(local)

    def __getitem__(self, idx: int) -> dict:
        which, local = self.locate(idx)
        # The member's own prepare_data does the train-time expression draw
        # (its pipeline is empty), then the shared pipeline runs.
        return self.pipeline(self.datasets[which].prepare_data(local))
