# Copyright (c) mmrefseg contributors.
"""REFER / gRefCOCO files -> refseg JSON Lines records."""
import os.path as osp
from typing import Callable, Iterator, List, Optional

from ..refer_io import load_instances, load_refs_file, sentence_text


def _ref_ann_ids(ref: dict, refs_file: str) -> List[int]:
    """A ref's annotation ids: REFER's int, gRefCOCO's list (``-1``: none)."""
    raw = ref.get('ann_id')
    if raw is None:
        raise ValueError(f'ref_id {ref.get("ref_id")} has no "ann_id" in '
                         f'{refs_file}')
    ids = raw if isinstance(raw, (list, tuple)) else [raw]
    return [int(a) for a in ids if int(a) != -1]


def refer_to_records(refs_file: str,
                     instances_file: str,
                     img_prefix: str = '',
                     splits: Optional[List[str]] = None,
                     progress: Optional[Callable[[], None]] = None
                     ) -> Iterator[dict]:
    """Records of the refseg format, one per ref of a REFER refs file.

    The refs file is a REFER ``refs(<splitBy>).p`` (read with the restricted
    unpickler of :mod:`mmrefseg.datasets.refer_io`) or a gRefCOCO
    ``grefs(<splitBy>).json``/``.p``. Each ref becomes a record with
    ``id`` = ``ref_id``, the image's ``image_id``/``height``/``width``,
    ``image`` = ``<img_prefix>/<file_name>``, its ``split``, its sentences
    (``sent``, else ``raw``, exactly the texts the REFER readers use) as
    ``phrases`` and one target per annotation: ``polygons`` or ``rle`` (the
    COCO segmentation as stored), ``box`` (the COCO box as xyxy) and ``id``
    (the ``ann_id``). gRefCOCO's ``[-1]`` gives ``targets: []``.

    Args:
        refs_file (str): The refs file.
        instances_file (str): Its COCO ``instances.json``.
        img_prefix (str): Folder written in front of every ``file_name``
            (relative to the future dataset's ``data_root``, or absolute).
        splits (list[str], optional): Only refs whose ``split`` is in it.
        progress (Callable, optional): Called once per ref written.

    Yields:
        dict: Records in the file format.

    Raises:
        ValueError: A ref points at an unknown image or annotation, or an
            annotation of another image.
    """
    refs = load_refs_file(refs_file)
    coco = load_instances(instances_file)
    images = {img['id']: img for img in coco['images']}
    anns = {ann['id']: ann for ann in coco['annotations']}
    for ref in refs:
        if splits is not None and ref.get('split') not in splits:
            continue
        ref_id, image_id = ref.get('ref_id'), ref.get('image_id')
        img = images.get(image_id)
        if img is None:
            raise ValueError(f'ref_id {ref_id} (in {refs_file}) points at '
                             f'image_id {image_id}, which is not in '
                             f'{instances_file}')
        targets = []
        for ann_id in _ref_ann_ids(ref, refs_file):
            ann = anns.get(ann_id)
            if ann is None or ann.get('image_id') != image_id:
                raise ValueError(f'ref_id {ref_id} (in {refs_file}) points '
                                 f'at ann_id {ann_id}, which is not an '
                                 f'annotation of image {image_id} in '
                                 f'{instances_file}')
            segm = ann['segmentation']
            x, y, w, h = (float(v) for v in ann['bbox'])
            target = dict(id=int(ann_id))
            target['rle' if isinstance(segm, dict) else 'polygons'] = segm
            target['box'] = [x, y, x + w, y + h]
            targets.append(target)
        file_name = img['file_name']
        record = dict(
            id=int(ref_id),
            image=osp.join(img_prefix, file_name) if img_prefix else
            file_name,
            height=int(img['height']),
            width=int(img['width']),
            image_id=int(image_id),
            phrases=[sentence_text(s, ref_id) for s in ref['sentences']],
            targets=targets)
        if ref.get('split') is not None:
            record['split'] = str(ref['split'])
        if progress is not None:
            progress()
        yield record
