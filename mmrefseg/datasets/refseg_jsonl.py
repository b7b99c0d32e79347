# Copyright (c) mmrefseg contributors.
"""Users' own referring-segmentation data in one JSON Lines file."""
from typing import Any, Dict, List, Optional, Tuple

from mmengine.logging import print_log

from mmrefseg.registry import DATASETS
from .refer_base import BaseReferDataset
from .refseg_format.records import (
    RefSegFormatError,
    load_refseg_jsonl,
    resolve_path,
)
from .refseg_format.targets import (
    box_polygon,
    mask_box_xyxy,
    mask_to_rle,
    read_image_size,
    read_mask_png,
    target_box_xyxy,
    union_box_xyxy,
)

BOX_ONLY_MODES = ('skip', 'box_mask')


@DATASETS.register_module()
class RefSegJsonlDataset(BaseReferDataset):
    """Referring segmentation on a "refseg JSON Lines" file.

    The format is described in docs/custom_data.md and
    :mod:`mmrefseg.datasets.refseg_format.records`.

    Each line is a record: an image, phrases and their targets (polygons,
    COCO RLE, a mask PNG or a box; several targets or none). A record plays
    the part of a REFER ref, so samples, modes (test grouping by expression
    or image, training draw, packing) and the sample dict are those of
    :class:`BaseReferDataset` (docs/design.md section 1) and every pipeline,
    head and metric works unchanged. Ids in the samples:

    - ``ref_id``: the record's ``id`` when it is an integer, else its line
      number; ``sent_id``: running phrase number over the whole file;
    - ``ann_ids``: each target's ``id``, else its running number over the
      file (``[]`` for no target); ``img_id``: the record's ``image_id``,
      else the order of first appearance of its image path.

    Expressions also carry ``record_id`` (the ``id`` as written).

    PNG masks are read when a sample is fetched (not at start-up) and handed
    to ``LoadRefMasks`` as COCO RLE; a PNG target without a ``box`` gets the
    tight box of its mask then.

    **Box-only targets** (a ``box`` and no mask). No head here regresses
    boxes, so a box cannot supervise anything but a mask:

    - ``box_only='skip'`` (default): records with any box-only target are
      left out of training *and* evaluation (a count is logged), so box
      rectangles never pose as masks in a mask loss or in cIoU.
    - ``box_only='box_mask'``: the box rectangle is used as the target mask
      (weak supervision) and as the GT box. Evaluate such data with
      ``Acc@0.5`` (REC from the predicted mask's box against the exact GT
      box); cIoU/gIoU then measure agreement with rectangles.

    Args:
        ann_file (str): The JSON Lines file (relative paths are joined with
            ``data_root``).
        data_root (str): Root of relative paths.
        split (str, optional): Keep records whose ``split`` equals it; None
            keeps every record.
        data_prefix (dict, optional): ``img_path`` (folder of ``image``
            paths) and ``mask_path`` (folder of ``mask`` paths), relative to
            ``data_root``. Both default to ``data_root`` itself.
        box_only (str): 'skip' or 'box_mask' (see above).
        dataset_name (str): ``dataset_name`` of the samples.
        split_by (str): Unused; accepted so that a config can turn a
            ``RefCOCODataset`` entry into this one by overriding keys.
        **kwargs: ``pipeline``, ``test_mode``, ``test_grouping``,
            ``max_expressions_per_sample``, ``seed``, ... of
            :class:`BaseReferDataset`.

    Examples:
        >>> dataset = RefSegJsonlDataset(
        ...     ann_file='my_data/refseg.jsonl', data_root='my_data',
        ...     split='val', test_mode=True)  # doctest: +SKIP
    """

    def __init__(self,
                 ann_file: str = '',
                 data_root: str = '',
                 split: Optional[str] = None,
                 data_prefix: Optional[dict] = None,
                 box_only: str = 'skip',
                 dataset_name: str = 'custom',
                 split_by: str = '',
                 **kwargs: Any) -> None:
        if not ann_file:
            raise ValueError('RefSegJsonlDataset needs ann_file (a refseg '
                             'JSON Lines file)')
        if box_only not in BOX_ONLY_MODES:
            raise ValueError(f'box_only must be one of {BOX_ONLY_MODES}, got '
                             f'{box_only!r}')
        self.box_only = box_only
        prefix = dict(img_path='', mask_path='')
        prefix.update(data_prefix or {})
        super().__init__(
            data_root=data_root,
            dataset_name=dataset_name,
            split_by=split_by,
            split=split,
            data_prefix=prefix,
            ann_file=ann_file,
            **kwargs)

    def default_refs_file(self) -> str:
        """There is no default file: ``ann_file`` is required."""
        return self.ann_file

    def load_data_list(self) -> List[dict]:
        """Parse the file and build the samples of the mode.

        Returns:
            list[dict]: Samples (docs/design.md section 1).

        Raises:
            RefSegFormatError: A record is malformed (file, line, id and
                reason in the message) or two records share an ``id``.
            ValueError: The split selects nothing.
        """
        path = self.ann_file
        records = load_refseg_jsonl(path)
        _check_unique_ids(records, path)
        image_ids = _image_ids(records, path)
        records_of_split = [
            r for r in records
            if self.split is None or r['split'] == self.split
        ]
        if not records_of_split:
            present = sorted({str(r['split']) for r in records})
            raise ValueError(f'Split {self.split!r} selects no records in '
                             f'{path}; splits present: {present}')
        sent_ids, ann_ids = _running_ids(records)
        sizes: Dict[str, Tuple[int, int]] = {}
        refs, image_infos, skipped = [], {}, 0
        for rec in records_of_split:
            if self.box_only == 'skip' and any(
                    t['kind'] == 'box' for t in rec['targets']):
                skipped += 1
                continue
            img_path = resolve_path(self.data_prefix['img_path'],
                                    rec['image'])
            height, width = self._image_size(rec, img_path, sizes, path)
            image_id = image_ids[rec['image']]
            image_infos.setdefault(
                image_id,
                dict(img_path=img_path, img_id=image_id, height=height,
                     width=width, dataset_name=self.dataset_name))
            refs.append(
                self._record_to_ref(rec, image_id, height, width,
                                    sent_ids[rec['line']],
                                    ann_ids[rec['line']]))
        if skipped:
            print_log(f'{path}: left out {skipped} record(s) with box-only '
                      "targets (box_only='skip')", logger='current')
        if not refs:
            raise ValueError(f'{path}: every record of split {self.split!r} '
                             "has box-only targets; use box_only='box_mask' "
                             'to train on box rectangles')
        return self.samples_from_records(refs, image_infos)

    def _image_size(self, rec: dict, img_path: str,
                    cache: Dict[str, Tuple[int, int]],
                    source: str) -> Tuple[int, int]:
        if rec['height'] is not None:
            return rec['height'], rec['width']
        if img_path not in cache:
            try:
                cache[img_path] = read_image_size(img_path)
            except (OSError, ValueError) as e:
                raise RefSegFormatError(
                    source, rec['line'], rec['id'], 'missing_image',
                    f'no height/width and the image cannot be read: '
                    f'{e}') from e
        return cache[img_path]

    def _record_to_ref(self, rec: dict, image_id: int, height: int,
                       width: int, sent_ids: List[int],
                       ann_ids: List[int]) -> dict:
        """A record as the ref dict of :meth:`samples_from_records`."""
        segmentations, boxes = [], []
        for target in rec['targets']:
            if target['kind'] == 'box':
                segmentations.append(box_polygon(target['box']))
            elif target['kind'] == 'mask':
                segmentations.append(
                    dict(png=resolve_path(self.data_prefix['mask_path'],
                                          target['data']),
                         value=target['value']))
            else:
                segmentations.append(target['data'])
            boxes.append(target_box_xyxy(target, height, width))
        ref_id = rec['id'] if isinstance(rec['id'], int) else rec['line']
        return dict(
            ref_id=ref_id,
            record_id=rec['id'],
            line=rec['line'],
            image_id=image_id,
            ann_ids=list(ann_ids),
            no_target=not rec['targets'],
            # None until the PNGs without a box are decoded.
            bbox=(union_box_xyxy(boxes)
                  if all(b is not None for b in boxes) else None),
            target_boxes=boxes,
            segmentations=segmentations,
            sentences=list(zip(sent_ids, rec['phrases'])),
        )

    @staticmethod
    def _expression(rec: dict, sent_id: int, text: str) -> dict:
        bbox = rec['bbox']
        expr = BaseReferDataset._expression(
            dict(rec, bbox=bbox if bbox is not None else []), sent_id, text)
        expr['bbox'] = None if bbox is None else expr['bbox']
        expr['record_id'] = rec['record_id']
        # Private until get_data_info has decoded the PNG targets.
        expr['_source'] = (rec['line'], rec['target_boxes'])
        return expr

    def get_data_info(self, idx: int) -> dict:
        """Sample ``idx`` with PNG targets decoded to RLE.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The sample of docs/design.md section 1.
        """
        info = super().get_data_info(idx)
        info['expressions'] = [
            self._decode_pngs(expr, info) for expr in info['expressions']
        ]
        return info

    def _decode_pngs(self, expr: dict, info: dict) -> dict:
        line, boxes = expr.pop('_source')
        if not any(isinstance(s, dict) and 'png' in s
                   for s in expr['segmentations']):
            return expr
        h, w = info['height'], info['width']
        segmentations, boxes = [], list(boxes)
        for k, segm in enumerate(expr['segmentations']):
            if not (isinstance(segm, dict) and 'png' in segm):
                segmentations.append(segm)
                continue
            try:
                mask = read_mask_png(segm['png'], segm['value'])
            except (OSError, ValueError) as e:
                raise RefSegFormatError(self.ann_file, line,
                                        expr['record_id'], 'unreadable_mask',
                                        str(e)) from e
            if mask.shape != (h, w):
                raise RefSegFormatError(
                    self.ann_file, line, expr['record_id'],
                    'mask_size_mismatch',
                    f'mask {segm["png"]} is {mask.shape[0]}x{mask.shape[1]} '
                    f'(HxW) but the image is {h}x{w}')
            segmentations.append(mask_to_rle(mask))
            if boxes[k] is None:
                boxes[k] = mask_box_xyxy(mask) or [0.0, 0.0, 0.0, 0.0]
        expr['segmentations'] = segmentations
        if expr['bbox'] is None:
            expr['bbox'] = union_box_xyxy(boxes)
        return expr


def _check_unique_ids(records: List[dict], source: str) -> None:
    first: Dict[Any, int] = {}
    for rec in records:
        if rec['id'] in first:
            raise RefSegFormatError(
                source, rec['line'], rec['id'], 'duplicate_id',
                f'id also used on line {first[rec["id"]]}')
        first[rec['id']] = rec['line']


def _image_ids(records: List[dict], source: str) -> Dict[str, int]:
    """image path -> image id (explicit ones checked, others numbered)."""
    explicit: Dict[str, int] = {}
    owner: Dict[int, str] = {}
    for rec in records:
        image_id = rec['image_id']
        if image_id is None:
            continue
        if explicit.setdefault(rec['image'], image_id) != image_id:
            raise RefSegFormatError(
                source, rec['line'], rec['id'], 'bad_record',
                f'image {rec["image"]!r} has image_id {image_id} here and '
                f'{explicit[rec["image"]]} on an earlier line')
        if owner.setdefault(image_id, rec['image']) != rec['image']:
            raise RefSegFormatError(
                source, rec['line'], rec['id'], 'bad_record',
                f'image_id {image_id} is used by both {owner[image_id]!r} '
                f'and {rec["image"]!r}')
    ids = dict(explicit)
    next_id = max(explicit.values(), default=0) + 1
    for rec in records:
        if rec['image'] not in ids:
            ids[rec['image']] = next_id
            next_id += 1
    return ids


def _running_ids(records: List[dict]) -> Tuple[dict, dict]:
    """line -> sentence ids and line -> annotation ids, numbered over the
    whole file (so they do not depend on the split)."""
    sent_ids, ann_ids = {}, {}
    n_sent = n_ann = 0
    for rec in records:
        sent_ids[rec['line']] = list(
            range(n_sent + 1, n_sent + 1 + len(rec['phrases'])))
        n_sent += len(rec['phrases'])
        ids = []
        for target in rec['targets']:
            n_ann += 1
            ids.append(target['id'] if target['id'] is not None else n_ann)
        ann_ids[rec['line']] = ids
    return sent_ids, ann_ids


__all__ = ['RefSegJsonlDataset', 'BOX_ONLY_MODES']
