# Copyright (c) mmrefseg contributors.
"""The "refseg JSON Lines" annotation format: parsing and writing records.

One UTF-8 line per *record*: an image, one or more phrases that all refer
to the same target set, and that set (several targets, or none)::

    {"id": "0007-cat", "image": "images/0007.jpg", "height": 480,
     "width": 640, "split": "train",
     "phrases": ["the cat on the left", "left cat"],
     "targets": [{"mask": "masks/0007__cat.png"}]}

Keys (``image``, ``phrases``, ``targets`` are required):

- ``image`` (str): path relative to the dataset's image folder
  (``data_root`` + ``data_prefix.img_path``) or absolute.
- ``height``/``width`` (int, optional): image size; read from the image
  header when missing.
- ``image_id`` (int, optional): defaults to the order of first appearance of
  the image path in the file.
- ``id`` (str or int, optional): unique record id; defaults to the line
  number. An integer id becomes the samples' ``ref_id``.
- ``split`` (str, optional): selected by the dataset's ``split`` argument.
- ``phrases`` (list[str]): at least one non-empty phrase.
- ``targets`` (list[dict]): ``[]`` means "no target" (gRefCOCO semantics:
  an all-zero mask and a ``[0, 0, 0, 0]`` box); several entries are the
  union. Each target has exactly one of

  - ``polygons``: COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (pixels),
  - ``rle``: COCO RLE ``{"size": [h, w], "counts": str | list}``,
  - ``mask``: a PNG path (relative to ``data_root`` +
    ``data_prefix.mask_path``, or absolute); non-zero pixels are the target,
    or, with ``"value": v``, the pixels equal to ``v`` (label maps),

  or only a ``box``. Any target may add ``box`` ``[x1, y1, x2, y2]``
  (float pixels, exclusive right/bottom edge like COCO) and an integer
  ``id`` (the sample's ``ann_ids``). A target with a box and nothing else is
  *box-only*: see :class:`RefSegJsonlDataset` for what training and
  evaluation do with it.
"""
import json
import os.path as osp
from typing import Any, Callable, Iterable, Iterator, List

#: Target kinds, in the order they are looked for.
MASK_KINDS = ('polygons', 'rle', 'mask')
RECORD_KEYS = ('id', 'image', 'height', 'width', 'image_id', 'split',
               'phrases', 'targets')
TARGET_KEYS = MASK_KINDS + ('box', 'id', 'value')


class RefSegFormatError(ValueError):
    """A record of a refseg JSON Lines file is malformed.

    Args:
        source (str): The file.
        line (int): 1-based line number of the record.
        record_id (Any): The record's ``id`` (or None when unknown).
        kind (str): Short error class, e.g. 'bad_record', 'empty_phrase'.
        reason (str): What is wrong.
    """

    def __init__(self, source: str, line: int, record_id: Any, kind: str,
                 reason: str) -> None:
        self.source, self.line, self.record_id = source, line, record_id
        self.kind, self.reason = kind, reason
        where = f'{source}:{line}'
        if record_id is not None:
            where += f' (id={record_id!r})'
        super().__init__(f'{where}: {kind}: {reason}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_box(box: Any, fail: Callable[[str, str], None]) -> List[float]:
    if (not isinstance(box, (list, tuple)) or len(box) != 4
            or not all(_is_number(v) for v in box)):
        fail('bad_record',
             f'box must be [x1, y1, x2, y2] numbers, got {box!r}')
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        fail('bad_record', f'box {box!r} has x2 < x1 or y2 < y1')
    return [x1, y1, x2, y2]


def _parse_target(target: Any, k: int, fail: Callable[[str, str],
                                                      None]) -> dict:
    """Normalise one target to ``dict(kind, data, box, id, value)``."""
    if not isinstance(target, dict):
        fail('bad_record', f'targets[{k}] must be an object, got '
             f'{type(target).__name__}')
    unknown = sorted(set(target) - set(TARGET_KEYS))
    if unknown:
        fail('bad_record', f'targets[{k}] has unknown keys {unknown}; '
             f'allowed: {list(TARGET_KEYS)}')
    kinds = [key for key in MASK_KINDS if key in target]
    if len(kinds) > 1:
        fail('bad_record', f'targets[{k}] has {kinds}; give exactly one of '
             f'{list(MASK_KINDS)} (plus an optional box)')
    if not kinds and 'box' not in target:
        fail('bad_record', f'targets[{k}] has none of {list(MASK_KINDS)} '
             'and no box')
    kind = kinds[0] if kinds else 'box'
    data = target.get(kind)
    if kind == 'polygons':
        if (not isinstance(data, list) or not data or not all(
                isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                and all(_is_number(v) for v in p) for p in data)):
            fail('bad_record', f'targets[{k}].polygons must be a non-empty '
                 'list of [x1, y1, x2, y2, x3, y3, ...] lists (>= 3 points)')
    elif kind == 'rle':
        if (not isinstance(data, dict) or 'counts' not in data
                or 'size' not in data
                or not isinstance(data['counts'], (str, list))):
            fail('bad_record', f'targets[{k}].rle must be a COCO RLE '
                 '{"size": [h, w], "counts": str or list}')
    elif kind == 'mask':
        if not isinstance(data, str) or not data.strip():
            fail('bad_record', f'targets[{k}].mask must be a PNG path')
    value = target.get('value')
    if value is not None and (kind != 'mask' or not isinstance(value, int)
                              or isinstance(value, bool)):
        fail('bad_record', f'targets[{k}].value (an int) only goes with '
             '"mask"')
    ann_id = target.get('id')
    if ann_id is not None and (not isinstance(ann_id, int)
                               or isinstance(ann_id, bool)):
        fail('bad_record', f'targets[{k}].id must be an integer')
    box = _parse_box(target['box'], fail) if 'box' in target else None
    if kind == 'box':
        data = box
    return dict(kind=kind, data=data, box=box, id=ann_id, value=value)


def parse_record(obj: Any, line: int, source: str = '<records>') -> dict:
    """Check one decoded JSON record and normalise it.

    Args:
        obj (Any): The decoded JSON value of the line.
        line (int): 1-based line number (the default ``id``).
        source (str): File name for error messages.

    Returns:
        dict: ``line``, ``id``, ``image``, ``height``, ``width``,
        ``image_id`` (None when absent), ``split`` (None when absent),
        ``phrases`` (list[str]) and ``targets`` (list of
        ``dict(kind, data, box, id, value)``, ``kind`` one of 'polygons',
        'rle', 'mask', 'box').

    Raises:
        RefSegFormatError: The record is malformed; the message names the
            file, the line, the id and the reason.
    """
    record_id = obj.get('id') if isinstance(obj, dict) else None

    def fail(kind: str, reason: str) -> None:
        raise RefSegFormatError(source, line, record_id, kind, reason)

    if not isinstance(obj, dict):
        fail('bad_record', f'a record must be a JSON object, got '
             f'{type(obj).__name__}')
    unknown = sorted(set(obj) - set(RECORD_KEYS))
    if unknown:
        fail('bad_record', f'unknown keys {unknown}; allowed: '
             f'{list(RECORD_KEYS)}')
    if record_id is not None and (not isinstance(record_id, (str, int))
                                  or isinstance(record_id, bool)):
        fail('bad_record', 'id must be a string or an integer')
    for key in ('image', 'phrases', 'targets'):
        if key not in obj:
            fail('bad_record', f'missing key {key!r}')
    image = obj['image']
    if not isinstance(image, str) or not image.strip():
        fail('bad_record', 'image must be a non-empty path string')
    size = [obj.get('height'), obj.get('width')]
    if (size[0] is None) != (size[1] is None):
        fail('bad_record', 'give both height and width, or neither')
    if size[0] is not None and not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0
            for v in size):
        fail('bad_record', f'height/width must be positive integers, got '
             f'{size}')
    image_id = obj.get('image_id')
    if image_id is not None and (not isinstance(image_id, int)
                                 or isinstance(image_id, bool)):
        fail('bad_record', 'image_id must be an integer')
    split = obj.get('split')
    if split is not None and not isinstance(split, str):
        fail('bad_record', 'split must be a string')
    phrases = obj['phrases']
    if isinstance(phrases, str):
        phrases = [phrases]
    if not isinstance(phrases, list) or not phrases or not all(
            isinstance(p, str) for p in phrases):
        fail('bad_record', 'phrases must be a non-empty list of strings')
    for k, phrase in enumerate(phrases):
        if not phrase.strip():
            fail('empty_phrase', f'phrases[{k}] is empty')
    targets = obj['targets']
    if not isinstance(targets, list):
        fail('bad_record', 'targets must be a list ([] for no target)')
    return dict(
        line=line,
        id=record_id if record_id is not None else line,
        image=image,
        height=size[0],
        width=size[1],
        image_id=image_id,
        split=split,
        phrases=[p.strip() for p in phrases],
        targets=[_parse_target(t, k, fail) for k, t in enumerate(targets)])


def iter_jsonl(path: str) -> Iterator[tuple]:
    """``(line number, decoded value or the JSON error)`` of each line.

    Blank lines are skipped. A line that is not valid JSON yields its
    :class:`RefSegFormatError` instead of a value, so a checker can go on.

    Args:
        path (str): The file.

    Yields:
        tuple: ``(line, value)`` with ``value`` the decoded JSON or a
        :class:`RefSegFormatError` of kind 'invalid_json'.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation file not found: {path}')
    with open(path, 'r', encoding='utf-8') as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as e:
                yield line, RefSegFormatError(path, line, None,
                                              'invalid_json', str(e))


def load_refseg_jsonl(path: str) -> List[dict]:
    """Read and parse every record of a file; stop at the first bad one.

    Args:
        path (str): A refseg JSON Lines file.

    Returns:
        list[dict]: Records as :func:`parse_record` returns them, in file
        order.

    Raises:
        FileNotFoundError: No such file.
        RefSegFormatError: A line is not JSON or a record is malformed.
    """
    records = []
    for line, value in iter_jsonl(path):
        if isinstance(value, RefSegFormatError):
            raise value
        records.append(parse_record(value, line, path))
    if not records:
        raise ValueError(f'{path} holds no records')
    return records


def dump_refseg_jsonl(records: Iterable[dict], path: str) -> int:
    """Write records (plain JSON dicts of the format) one per line.

    Args:
        records (Iterable[dict]): Records in the file format (not the parsed
            form).
        path (str): Output file; parent folders must exist.

    Returns:
        int: Number of records written.
    """
    count = 0
    with open(path, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + '\n')
            count += 1
    return count


def resolve_path(root: str, path: str) -> str:
    """``path`` if absolute, else joined with ``root`` (if any)."""
    return path if osp.isabs(path) or not root else osp.join(root, path)


__all__ = [
    'MASK_KINDS', 'RefSegFormatError', 'parse_record', 'iter_jsonl',
    'load_refseg_jsonl', 'dump_refseg_jsonl', 'resolve_path'
]
