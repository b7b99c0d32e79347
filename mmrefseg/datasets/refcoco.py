# Copyright (c) mmrefseg contributors.
"""RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF in the original REFER layout."""
from typing import List

from mmrefseg.registry import DATASETS
from .refer_base import BaseReferDataset
from .refer_io import refer_refs_path, select_refer_split


@DATASETS.register_module()
class RefCOCODataset(BaseReferDataset):
    """Referring expression segmentation on REFER files.

    Reads ``<data_root>/<dataset_name>/refs(<split_by>).p`` (a Python-2
    pickle, loaded with a restricted unpickler) and
    ``<data_root>/<dataset_name>/instances.json``; images are looked up as
    ``<data_root>/<data_prefix.img_path>/<images[i].file_name>``. Splits follow
    REFER's ``getRefIds``: 'testA'/'testB'/'testC' keep refs whose split
    contains that letter, 'test' keeps every 'test*' split, others are exact.
    Valid (dataset, split_by) pairs of the public data: refcoco {unc, google},
    refcoco+ {unc}, refcocog {umd, google}, refclef {unc, berkeley}.

    Each ref points at one annotation, so ``ann_ids`` has one entry and
    ``no_target`` is False. Arguments and sample modes are those of
    :class:`BaseReferDataset`.

    Examples:
        >>> dataset = RefCOCODataset(
        ...     data_root='data/refer_seg', dataset_name='refcoco',
        ...     split_by='unc', split='val', test_mode=True)
        >>> dataset[0]['expressions'][0]['text']  # doctest: +SKIP
    """

    def default_refs_file(self) -> str:
        """``<data_root>/<dataset_name>/refs(<split_by>).p``."""
        return refer_refs_path(self.data_root, self.dataset_name,
                               self.split_by)

    def select_split(self, refs: List[dict]) -> List[dict]:
        """REFER ``getRefIds(split=...)`` selection."""
        return select_refer_split(refs, self.split)

    def ref_ann_ids(self, ref: dict) -> List[int]:
        """The ref's single ``ann_id``."""
        if 'ann_id' not in ref:
            raise ValueError(f'ref_id {ref.get("ref_id")} has no "ann_id" in '
                             f'{self.refs_file}')
        return [int(ref['ann_id'])]
