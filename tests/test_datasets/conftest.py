# Copyright (c) mmrefseg contributors.
"""Fixtures of the dataset tests: Python-2 pickles and a hand-made REFER tree.

The synthetic dataset itself comes from ``synthetic_root`` in
``tests/conftest.py``.
"""
import json
import os.path as osp
import struct
from typing import Any, Callable

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils


def py2_dumps(obj: Any) -> bytes:
    """Pickle ``obj`` the way Python 2's cPickle does at protocol 2.

    ``bytes`` stand for py2 ``str`` (SHORT_BINSTRING/BINSTRING opcodes),
    ``str`` for py2 ``unicode`` (BINUNICODE); every string and container is
    memoised with BINPUT like cPickle does.
    """
    out = [b'\x80\x02']
    memo = [0]

    def put() -> None:
        out.append(b'q' + bytes([memo[0]]) if memo[0] < 256 else b'r' +
                   struct.pack('<I', memo[0]))
        memo[0] += 1

    def write(o: Any) -> None:
        if o is None:
            out.append(b'N')
        elif o is True or o is False:
            out.append(b'\x88' if o else b'\x89')
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.append(b'K' + bytes([o]))
            elif 0 <= o < 65536:
                out.append(b'M' + struct.pack('<H', o))
            else:
                out.append(b'J' + struct.pack('<i', o))
        elif isinstance(o, float):
            out.append(b'G' + struct.pack('>d', o))
        elif isinstance(o, bytes):
            out.append(b'U' + bytes([len(o)]) + o if len(o) < 256 else b'T' +
                       struct.pack('<i', len(o)) + o)
            put()
        elif isinstance(o, str):
            data = o.encode('utf-8')
            out.append(b'X' + struct.pack('<I', len(data)) + data)
            put()
        elif isinstance(o, (list, dict)):
            out.append(b']' if isinstance(o, list) else b'}')
            put()
            if o:
                out.append(b'(')
                items = o if isinstance(o, list) else \
                    [x for kv in o.items() for x in kv]
                for x in items:
                    write(x)
                out.append(b'e' if isinstance(o, list) else b'u')
        else:
            raise TypeError(type(o))

    write(obj)
    out.append(b'.')
    return b''.join(out)


@pytest.fixture
def py2_pickle() -> Callable[[Any], bytes]:
    """The :func:`py2_dumps` helper."""
    return py2_dumps


# Ground truth of the hand-made tree: image id -> (h, w); ann id -> mask.
H1, W1, H2, W2 = 40, 50, 30, 36


def _rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major runs, starting with zeros)."""
    flat = mask.flatten(order='F')
    counts, run, cur = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    return {'size': list(mask.shape), 'counts': counts}


@pytest.fixture
def to_uncompressed_rle() -> Callable[[np.ndarray], dict]:
    """The :func:`uncompressed_rle` helper."""
    return uncompressed_rle


@pytest.fixture
def refer_tree(tmp_path: Any) -> dict:
    """A REFER pair as the Python-2 toolkit wrote it, plus its images.

    Layout ``<root>/refcoco/refs(unc).p`` (py2 protocol-2 pickle) +
    ``<root>/refcoco/instances.json`` + images under
    ``<root>/images/mscoco/images/train2014``. Returns paths and the
    expected masks.
    """
    root = tmp_path / 'refer_seg'
    (root / 'refcoco').mkdir(parents=True)
    img_dir = root / 'images' / 'mscoco' / 'images' / 'train2014'
    img_dir.mkdir(parents=True)
    masks = {
        11: _rect(H1, W1, 10, 20, 5, 25),  # polygon
        12: _rect(H1, W1, 25, 35, 30, 45),  # compressed RLE (str counts)
        21: _rect(H2, W2, 2, 12, 3, 9),  # uncompressed RLE
        22: _rect(H2, W2, 15, 28, 20, 34),  # polygon
    }
    rle12 = mask_utils.encode(np.asfortranarray(masks[12]))
    segs = {
        11: [[5, 10, 25, 10, 25, 20, 5, 20], [1, 1, 2, 2]],  # 2nd part: < 6
        12: {
            'size': [H1, W1],
            'counts': rle12['counts'].decode('ascii')
        },
        21: uncompressed_rle(masks[21]),
        22: [[20, 15, 34, 15, 34, 28, 20, 28]],
    }
    images = [
        dict(
            id=1,
            file_name='COCO_train2014_000000000001.jpg',
            height=H1,
            width=W1),
        dict(
            id=2,
            file_name='COCO_train2014_000000000002.jpg',
            height=H2,
            width=W2),
    ]
    anns = []
    for ann_id, seg in segs.items():
        ys, xs = np.nonzero(masks[ann_id])
        anns.append(
            dict(
                id=ann_id,
                image_id=ann_id // 10,
                category_id=1,
                segmentation=seg,
                iscrowd=int(ann_id == 21),
                area=float(masks[ann_id].sum()),
                bbox=[
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1)
                ]))
    (root / 'refcoco' / 'instances.json').write_text(
        json.dumps(
            dict(
                images=images,
                annotations=anns,
                categories=[dict(id=1, name='thing', supercategory='thing')])))

    def sent(sid: int, raw: Any, sent_: Any) -> dict:
        return {
            b'tokens': sent_.split() if sent_ else [],
            b'raw': raw,
            b'sent_id': sid,
            b'sent': sent_
        }

    # py2 ``str`` everywhere except one ``unicode`` raw, as in REFER files.
    refs = [
        {
            b'image_id':
            1,
            b'split':
            b'train',
            b'sentences': [
                sent(100, b'The LEFT box.', b'the left box'),
                sent(101, u'caf\xe9 box', b'')
            ],
            b'file_name':
            b'COCO_train2014_000000000001_11.jpg',
            b'category_id':
            1,
            b'ann_id':
            11,
            b'sent_ids': [100, 101],
            b'ref_id':
            1
        },
        {
            b'image_id': 1,
            b'split': b'testA',
            b'sentences': [sent(102, b'Right box', b'right box')],
            b'file_name': b'COCO_train2014_000000000001_12.jpg',
            b'category_id': 1,
            b'ann_id': 12,
            b'sent_ids': [102],
            b'ref_id': 2
        },
        {
            b'image_id':
            2,
            b'split':
            b'testB',
            b'sentences': [
                sent(200, b'Top thing', b'top thing'),
                sent(201, b'upper one', b'upper one')
            ],
            b'file_name':
            b'COCO_train2014_000000000002_21.jpg',
            b'category_id':
            1,
            b'ann_id':
            21,
            b'sent_ids': [200, 201],
            b'ref_id':
            3
        },
        {
            b'image_id': 2,
            b'split': b'val',
            b'sentences': [sent(202, b'bottom thing', b'bottom thing')],
            b'file_name': b'COCO_train2014_000000000002_22.jpg',
            b'category_id': 1,
            b'ann_id': 22,
            b'sent_ids': [202],
            b'ref_id': 4
        },
    ]
    (root / 'refcoco' / 'refs(unc).p').write_bytes(py2_dumps(refs))
    for img in images:
        pixels = np.full((img['height'], img['width'], 3), 90, np.uint8)
        cv2.imwrite(str(img_dir / img['file_name']), pixels)
    return dict(
        root=str(root),
        masks=masks,
        refs_file=osp.join(str(root), 'refcoco', 'refs(unc).p'),
        instances=osp.join(str(root), 'refcoco', 'instances.json'),
        img_dir=str(img_dir))
