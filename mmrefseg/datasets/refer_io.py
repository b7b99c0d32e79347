# Copyright (c) mmrefseg contributors.
"""Reading REFER / gRefCOCO annotation files and decoding COCO segmentations.

The REFER toolkit (``refer.py``) ships its refs as Python-2 pickles. Pickles
can run arbitrary code on load, so :func:`safe_load_pickle` admits nothing but
plain containers and scalars: every global a pickle asks for is refused (a
couple of harmless builtins aside) before it could be called.

Expected layout (``<dataset>``: ``refcoco``, ``refcoco+``, ``grefcoco``...)::

    <data_root>/<dataset>/refs(<splitBy>).p      # REFER refs (pickle)
    <data_root>/<dataset>/grefs(<splitBy>).json  # gRefCOCO refs (json or .p)
    <data_root>/<dataset>/instances.json         # COCO images/annotations
    <data_root>/<img prefix>/<file_name>         # images
"""
import io
import json
import os.path as osp
import pickle
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

#: Splits with a REFER-specific selection rule; anything else is exact.
REFER_TEST_PARTS = ('testA', 'testB', 'testC')

LAYOUT_HINT = ('expected layout: <data_root>/<dataset>/refs(<splitBy>).p + '
               '<data_root>/<dataset>/instances.json (gRefCOCO: '
               '<data_root>/grefcoco/grefs(unc).json + '
               '<data_root>/grefcoco/instances.json), images under '
               '<data_root>/<data_prefix.img_path>/')


class UnsafePickleError(ValueError):
    """A pickle asked for a global that the safe unpickler refuses."""


def _latin1_encode(text: str, encoding: str = 'latin1') -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles written by
    Python 3 use for ``bytes``; only the latin-1 round trip is allowed."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError(
            f'_codecs.encode called with ({type(text).__name__}, '
            f'{encoding!r}); only (str, "latin1") is allowed')
    return text.encode('latin1')


# Globals that only build plain containers: a py2 pickle of a set refers to
# ``__builtin__.set``, a Python-3 protocol-2 pickle of bytes to
# ``_codecs.encode``.
_ALLOWED_GLOBALS: Dict[tuple, Callable] = {
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('__builtin__', 'frozenset'): frozenset,
    ('_codecs', 'encode'): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` refuses every non-allowlisted global.

    Refusing in ``find_class`` means the callable is never even imported, so a
    ``__reduce__`` payload cannot run.
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        # latin1 maps py2 ``str`` (SHORT_BINSTRING/BINSTRING) 1:1 onto str.
        super().__init__(file, encoding='latin1')
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        fn = _ALLOWED_GLOBALS.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f'Refusing to unpickle {self._source!r}: it references the '
                f'global {module}.{name}, but REFER files may only contain '
                'dicts, lists, tuples, sets, strings, numbers, booleans and '
                'None. The file was not loaded and nothing in it was run.')
        return fn

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f'Refusing to unpickle {self._source!r}: it uses persistent id '
            f'{pid!r}')


def safe_load_pickle(path: str) -> Any:
    """Load a pickle that may only hold plain containers and scalars.

    Python-2 pickles (protocol 0-2) load too: py2 ``str`` becomes ``str``
    through latin-1, py2 ``unicode`` is already ``str``.

    Args:
        path (str): Pickle file.

    Returns:
        Any: The unpickled object (dicts, lists, tuples, sets, str, bytes,
        int, float, bool, None).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: The pickle references a refused global (named in
            the message together with the file).
        ValueError: The file is not a readable pickle.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Pickle file not found: {path}')
    with open(path, 'rb') as f:
        try:
            return _SafeUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated/garbled files give many types
            raise ValueError(f'Cannot unpickle {path!r}: '
                             f'{type(e).__name__}: {e}') from e


def _load_json(path: str) -> Any:
    with open(path, 'r', encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'Invalid JSON in {path!r}: {e}') from e


def _missing(kind: str, path: str, tried: Sequence[str] = ()) -> NoReturn:
    extra = f' (also tried {", ".join(tried)})' if tried else ''
    raise FileNotFoundError(f'{kind} not found: {path}{extra}; {LAYOUT_HINT}')


def load_refs_file(path: str) -> List[dict]:
    """Load a refs file (``.p`` through the safe unpickler, else JSON).

    Args:
        path (str): ``refs(<splitBy>).p``, ``grefs(<splitBy>).json`` or
            ``grefs(<splitBy>).p``.

    Returns:
        list[dict]: The refs, in file order.
    """
    if not osp.isfile(path):
        _missing('Refs file', path)
    refs = safe_load_pickle(path) if path.endswith('.p') else _load_json(path)
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) for r in refs):
        raise ValueError(f'{path!r} should hold a list of ref dicts, got '
                         f'{type(refs).__name__}')
    return refs


def refer_refs_path(data_root: str, dataset: str, split_by: str) -> str:
    """``<data_root>/<dataset>/refs(<split_by>).p``."""
    return osp.join(data_root, dataset, f'refs({split_by}).p')


def find_grefer_refs_path(data_root: str, dataset: str, split_by: str) -> str:
    """Locate ``grefs(<split_by>).json``, falling back to ``.p``.

    Raises:
        FileNotFoundError: Neither exists; the message names both.
    """
    json_path = osp.join(data_root, dataset, f'grefs({split_by}).json')
    pkl_path = osp.join(data_root, dataset, f'grefs({split_by}).p')
    for path in (json_path, pkl_path):
        if osp.isfile(path):
            return path
    _missing('gRefCOCO refs file', json_path, [pkl_path])


def load_instances(path: str) -> dict:
    """Load a COCO ``instances.json`` and check its top-level keys.

    Args:
        path (str): The file.

    Returns:
        dict: With at least ``images`` and ``annotations`` lists.
    """
    if not osp.isfile(path):
        _missing('COCO instances file', path)
    data = _load_json(path)
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ('images', 'annotations')):
        raise ValueError(f'{path!r} is not a COCO instances file: it needs '
                         '"images" and "annotations" lists')
    return data


def select_refer_split(refs: Sequence[dict], split: str) -> List[dict]:
    """Select refs of a split exactly like REFER's ``getRefIds(split=...)``.

    'testA'/'testB'/'testC' keep refs with ``split[-1] in ref['split']`` (so
    'testA' also keeps a 'testAB' ref), 'test' keeps every 'test*' ref, any
    other name ('train', 'val', 'testAB', ...) must match exactly.

    Args:
        refs (Sequence[dict]): Refs with a ``split`` key.
        split (str): Split name.

    Returns:
        list[dict]: The selected refs, in input order.
    """
    if split in REFER_TEST_PARTS:
        return [r for r in refs if split[-1] in r['split']]
    if split == 'test':
        return [r for r in refs if 'test' in r['split']]
    return [r for r in refs if r['split'] == split]


def select_exact_split(refs: Sequence[dict], split: str) -> List[dict]:
    """Select refs whose ``split`` equals ``split`` (gRefCOCO rule)."""
    return [r for r in refs if r['split'] == split]


def segmentation_to_mask(segm: Any, h: int, w: int) -> np.ndarray:
    """Decode one COCO segmentation to a binary mask.

    Args:
        segm (list | dict): Polygons ``[[x1, y1, x2, y2, ...], ...]`` (parts
            with fewer than 6 coordinates are skipped), uncompressed RLE
            (``counts`` a list) or compressed RLE (``counts`` str or bytes).
        h (int): Image height.
        w (int): Image width.

    Returns:
        np.ndarray: (h, w) uint8 in {0, 1}.
    """
    if isinstance(segm, (list, tuple)):
        polys = [list(map(float, p)) for p in segm if len(p) >= 6]
        if not polys:
            return np.zeros((h, w), dtype=np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    elif isinstance(segm, dict) and 'counts' in segm:
        size = [int(s) for s in segm.get('size', (h, w))]
        if size != [h, w]:
            raise ValueError(f'RLE size {size} does not match the image size '
                             f'{[h, w]}')
        counts = segm['counts']
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects({
                'size': size,
                'counts': counts
            }, h, w)
        else:
            if isinstance(counts, str):
                counts = counts.encode('ascii')
            rle = {'size': size, 'counts': counts}
    else:
        raise TypeError('Unsupported COCO segmentation of type '
                        f'{type(segm).__name__}')
    mask = mask_utils.decode(rle)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return (mask > 0).astype(np.uint8)


def union_mask(segms: Sequence[Any], h: int, w: int) -> np.ndarray:
    """Union of several COCO segmentations (all zeros when empty).

    Args:
        segms (Sequence): COCO segmentations, one per annotation.
        h (int): Image height.
        w (int): Image width.

    Returns:
        np.ndarray: (h, w) uint8 in {0, 1}.
    """
    mask = np.zeros((h, w), dtype=np.uint8)
    for segm in segms:
        mask |= segmentation_to_mask(segm, h, w)
    return mask


def union_bbox_xyxy(bboxes_xywh: Sequence[Sequence[float]]) -> List[float]:
    """Union of COCO ``[x, y, w, h]`` boxes as ``[x1, y1, x2, y2]``.

    Args:
        bboxes_xywh (Sequence): COCO boxes; empty for a no-target expression.

    Returns:
        list[float]: The enclosing box, ``[0, 0, 0, 0]`` if there is none.
    """
    if not bboxes_xywh:
        return [0.0, 0.0, 0.0, 0.0]
    b = np.asarray(bboxes_xywh, dtype=np.float64).reshape(-1, 4)
    return [
        float(b[:, 0].min()),
        float(b[:, 1].min()),
        float((b[:, 0] + b[:, 2]).max()),
        float((b[:, 1] + b[:, 3]).max())
    ]


def sentence_text(sentence: dict, ref_id: Optional[int] = None) -> str:
    """``sentence['sent']`` (REFER-normalised), falling back to ``raw``."""
    text = sentence.get('sent') or sentence.get('raw')
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'Sentence {sentence.get("sent_id")} of ref {ref_id} '
                         'has neither "sent" nor "raw" text')
    return text
