# Copyright (c) mmrefseg contributors.
"""gRefCOCO (generalised referring expressions: multi- and no-target)."""
from typing import Any, List, Optional

from mmengine.logging import print_log

from mmrefseg.registry import DATASETS
from .refer_base import BaseReferDataset
from .refer_io import find_grefer_refs_path, select_exact_split


@DATASETS.register_module()
class GRefCOCODataset(BaseReferDataset):
    """gRefCOCO: an expression may name several objects or none.

    Reads ``<data_root>/<dataset_name>/grefs(<split_by>).json`` (or
    ``grefs(<split_by>).p`` through the restricted unpickler) and
    ``<data_root>/<dataset_name>/instances.json``. ``ref['ann_id']`` is a list
    (a bare int is accepted too); ``-1`` entries mean "no target", so
    ``[-1]`` gives ``ann_ids=[]``, ``no_target=True``, an all-zero mask and a
    ``[0, 0, 0, 0]`` box, while several ids give the union mask and union
    box. Splits (train/val/testA/testB) match exactly, as in ``G_REFER``.

    Args:
        data_root (str): Root holding ``grefcoco/`` and the images.
        dataset_name (str): Annotation folder. Defaults to 'grefcoco'.
        split_by (str): Defaults to 'unc'.
        **kwargs: Everything else of :class:`BaseReferDataset`.
    """

    def __init__(self,
                 data_root: str = '',
                 dataset_name: str = 'grefcoco',
                 split_by: str = 'unc',
                 **kwargs: Any) -> None:
        self._warned_no_target_field = False
        super().__init__(
            data_root=data_root,
            dataset_name=dataset_name,
            split_by=split_by,
            **kwargs)

    def default_refs_file(self) -> str:
        """``grefs(<split_by>).json``, else ``grefs(<split_by>).p``."""
        return find_grefer_refs_path(self.data_root, self.dataset_name,
                                     self.split_by)

    def select_split(self, refs: List[dict]) -> List[dict]:
        """Exact split match (``G_REFER.getRefIds``)."""
        return select_exact_split(refs, self.split)

    def ref_ann_ids(self, ref: dict) -> List[int]:
        """The ref's annotation ids without the ``-1`` no-target marker."""
        raw: Optional[Any] = ref.get('ann_id')
        if raw is None:
            raise ValueError(f'ref_id {ref.get("ref_id")} has no "ann_id" in '
                             f'{self.refs_file}')
        ann_ids = raw if isinstance(raw, (list, tuple)) else [raw]
        ann_ids = [int(a) for a in ann_ids if int(a) != -1]
        # ann_id is what G_REFER masks are built from; the file's own
        # no_target flag is only cross-checked.
        flag = ref.get('no_target')
        if (flag is not None and bool(flag) != (not ann_ids)
                and not self._warned_no_target_field):
            self._warned_no_target_field = True
            print_log(
                f'ref_id {ref.get("ref_id")}: no_target={flag} disagrees with '
                f'ann_id={raw}; following ann_id (warned once)',
                logger='current',
                level=30)
        return ann_ids
