# Copyright (c) mmrefseg contributors.
"""A small, deterministic referring-segmentation dataset in the REFER layout.

Written tree (``out_root``)::

    images/synthetic/synth_000001.jpg ...     # the images (img prefix)
    synthrefcoco/instances.json               # COCO images/annotations
    synthrefcoco/refs(unc).p                  # REFER refs, pickle protocol 2
    grefcoco/instances.json                   # same content as above
    grefcoco/grefs(unc).json                  # gRefCOCO-style refs

so ``RefCOCODataset(data_root=out_root, dataset_name='synthrefcoco',
data_prefix=dict(img_path='images/synthetic'))`` and ``GRefCOCODataset(...)``
read it like the real data. Scenes hold 2-4 coloured shapes (7 colours, 5
shapes) on a textured low-saturation background, never overlapping. Every
object gets a ref with 2-3 expressions (colour, shape, colour+shape, position,
size) that are checked to single it out; gRefCOCO refs add multi-target
("all red shapes", "the two circles", "the red star and the blue square")
and no-target ("the purple star" when there is none, ``ann_id=[-1]``)
expressions. Splits: the first ``num_train`` images are 'train', the next
``num_val`` 'val', then the first half (rounded up) of the test images is
'testA' and the rest 'testB'. The same seed gives byte-identical files.
"""
import json
import os
import os.path as osp
import pickle
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from .refer_io import segmentation_to_mask
from .synthetic_language import (
    COLOURS,
    SHAPES,
    SceneObject,
    multi_target_texts,
    no_target_texts,
    scene_object_from_ann,
    single_target_texts,
)

IMG_PREFIX = 'images/synthetic'
REFER_NAME = 'synthrefcoco'
GREFER_NAME = 'grefcoco'
CATEGORIES = [
    dict(supercategory='shape', id=i + 1, name=s) for i, s in enumerate(SHAPES)
]
_CAT_ID = {s: i + 1 for i, s in enumerate(SHAPES)}
#: (target object indices, sentences) of each ref to write.
RefPlan = List[Tuple[List[int], List[str]]]


def shape_polygon(shape: str, cx: float, cy: float, r: float,
                  angle: float) -> np.ndarray:
    """Vertices of a shape inscribed in the circle (cx, cy, r).

    Args:
        shape (str): One of :data:`SHAPES`.
        cx (float): Centre x.
        cy (float): Centre y.
        r (float): Circumradius in pixels.
        angle (float): Rotation in radians.

    Returns:
        np.ndarray: (P, 2) float64 vertices (x, y).
    """
    if shape == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'square':
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.7
    elif shape == 'diamond':
        pts = np.array([[0, -1], [0.62, 0], [0, 1], [-0.62, 0]])
    elif shape == 'triangle':
        t = np.deg2rad([-90, 30, 150])
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'star':
        t = np.deg2rad(-90 + 36 * np.arange(10))
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)
    else:
        raise ValueError(f'Unknown shape {shape!r}')
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T * r + np.array([cx, cy])


def _sample_objects(rng: np.random.Generator, width: int, height: int,
                    num: int) -> List[dict]:
    """Place up to ``num`` non-overlapping shapes (circumcircles apart)."""
    colours, side = list(COLOURS), min(width, height)
    objs: List[dict] = []
    for _ in range(num * 30):
        if len(objs) == num:
            break
        r = float(rng.uniform(0.08, 0.21) * side)
        cx = float(rng.uniform(r + 2, width - r - 2))
        cy = float(rng.uniform(r + 2, height - r - 2))
        if any(
                np.hypot(cx - o['cx'], cy - o['cy']) < r + o['r'] + 4
                for o in objs):
            continue
        # Repeating an existing colour/shape now and then is what makes
        # position/size words (and multi-target refs) necessary.
        if objs and rng.random() < 0.35:
            colour = objs[int(rng.integers(len(objs)))]['colour']
        else:
            colour = colours[int(rng.integers(len(colours)))]
        if objs and rng.random() < 0.35:
            shape = objs[int(rng.integers(len(objs)))]['shape']
        else:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
        angle = float(np.deg2rad(rng.uniform(-12, 12)))
        poly = np.round(shape_polygon(shape, cx, cy, r, angle), 2)
        objs.append(
            dict(shape=shape, colour=colour, cx=cx, cy=cy, r=r, poly=poly))
    return objs


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """Low-saturation texture: tinted grey + blobs + gradient + stripes."""
    grey = rng.uniform(95, 170)
    base = (grey + rng.uniform(-15, 15, size=3)).astype(np.float32)
    blobs = rng.normal(
        0, 16, size=(int(rng.integers(3, 8)), int(rng.integers(3, 8)), 1))
    blobs = cv2.resize(
        blobs.astype(np.float32), (width, height),
        interpolation=cv2.INTER_CUBIC)
    theta = rng.uniform(0, np.pi)
    # Outer sum instead of a meshgrid: the projection is separable.
    proj = (
        np.arange(height, dtype=np.float32)[:, None] * np.sin(theta) +
        np.arange(width, dtype=np.float32)[None, :] * np.cos(theta))
    field = blobs + rng.uniform(-25, 25) / max(width, height) * proj
    field += rng.uniform(0, 7) * np.sin(proj / rng.uniform(3, 9))
    return field[..., None] + base


def render_scene(rng: np.random.Generator, width: int, height: int,
                 objs: List[dict]) -> np.ndarray:
    """Draw the objects on a fresh background.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    img = _background(rng, width, height).astype(np.int16)
    for o in objs:
        # Painted through pycocotools' own rasteriser, so the pixels of an
        # object are exactly the mask every evaluator decodes from its
        # polygon (cv2.fillPoly would draw about half a pixel fatter).
        mask = segmentation_to_mask([o['poly'].ravel().tolist()], height,
                                    width).astype(bool)
        img[mask] = COLOURS[o['colour']]
    # Triangular integer noise: Gaussian-looking grain at a fraction of the
    # cost of drawing normals.
    img += rng.integers(-5, 6, size=img.shape, dtype=np.int16)
    img += rng.integers(-5, 6, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _annotation(o: dict, ann_id: int, image_id: int) -> dict:
    poly = o['poly']
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(
        float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return dict(
        segmentation=[[float(v) for v in poly.ravel()]],
        area=round(area, 2),
        iscrowd=0,
        image_id=image_id,
        bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        category_id=_CAT_ID[o['shape']],
        id=ann_id)


class _RefFile:
    """The refs of one annotation file, numbered as they are added.

    Args:
        grefer (bool): gRefCOCO style (``ann_id``/``category_id`` lists and
            a ``no_target`` flag) instead of REFER style.
    """

    def __init__(self, grefer: bool) -> None:
        self.grefer = grefer
        self.refs: List[dict] = []
        self.num_sentences = 0

    def add(self, targets: List[int], texts: List[str], image: dict,
            split: str, anns: List[dict], rng: np.random.Generator) -> None:
        """Append a ref to ``anns[targets]`` (none: no-target) of ``image``."""
        sentences = []
        for t in texts:
            self.num_sentences += 1
            raw = t[0].upper() + t[1:] + ('.' if rng.random() < 0.3 else '')
            sentences.append(
                dict(
                    tokens=t.split(),
                    raw=raw,
                    sent_id=self.num_sentences,
                    sent=t))
        ann_ids = [anns[i]['id'] for i in targets] or [-1]
        cat_ids = [anns[i]['category_id'] for i in targets] or [-1]
        stem, ext = osp.splitext(image['file_name'])
        ref = dict(
            sent_ids=[s['sent_id'] for s in sentences],
            # REFER names a ref's file after its image and first ann.
            file_name=f'{stem}_{ann_ids[0]}{ext}',
            ann_id=ann_ids if self.grefer else ann_ids[0],
            ref_id=len(self.refs) + 1,
            image_id=image['id'],
            split=split,
            sentences=sentences,
            category_id=cat_ids if self.grefer else cat_ids[0])
        if self.grefer:
            ref['no_target'] = not targets
        self.refs.append(ref)

    def per_split(self) -> Dict[str, int]:
        """Number of refs of each split."""
        out: Dict[str, int] = {}
        for r in self.refs:
            out[r['split']] = out.get(r['split'], 0) + 1
        return out


def _pick_texts(by_kind: Dict[str, List[str]], k: int,
                rng: np.random.Generator) -> List[str]:
    """Up to ``k`` texts, each from a different kind while kinds last."""
    pools = [list(v) for _, v in sorted(by_kind.items()) if v]
    rng.shuffle(pools)
    picked: List[str] = []
    while len(picked) < k and any(pools):
        for pool in pools:
            if pool and len(picked) < k:
                picked.append(pool.pop(int(rng.integers(len(pool)))))
    return picked


def _plan_refs(rng: np.random.Generator, scene: List[SceneObject],
               texts: List[Dict[str, List[str]]], width: int,
               height: int) -> Tuple[RefPlan, RefPlan]:
    """(targets, sentences) of an image's REFER refs and gRefCOCO refs.

    REFER: one ref per object with 2-3 sentences of different kinds.
    gRefCOCO: one ref per object (1-2 sentences), up to two multi-target
    refs and one no-target ref.
    """
    refer, grefer = [], []
    for i, by_kind in enumerate(texts):
        if any(by_kind.values()):
            refer.append(
                ([i], _pick_texts(by_kind, int(rng.integers(2, 4)), rng)))
            grefer.append(
                ([i], _pick_texts(by_kind, int(rng.integers(1, 3)), rng)))
    groups = sorted(
        multi_target_texts(scene, width, height).items(),
        key=lambda kv: sorted(kv[0]))
    for k in rng.permutation(len(groups))[:2]:
        members, ts = groups[int(k)]
        picks = rng.permutation(len(ts))[:int(rng.integers(1, 3))]
        grefer.append((sorted(members), [ts[j] for j in picks]))
    no_target = no_target_texts(scene, width, height, rng)
    if no_target:
        grefer.append(([], no_target[:int(rng.integers(1, 3))]))
    return refer, grefer


def _split_of(index: int, n_train: int, n_val: int, n_test: int) -> str:
    if index < n_train:
        return 'train'
    if index < n_train + n_val:
        return 'val'
    return 'testA' if index - n_train - n_val < (n_test + 1) // 2 else 'testB'


def _scene(
    rng: np.random.Generator
) -> Tuple[int, int, List[dict], List[SceneObject], list]:
    """Sample a scene whose every object has a unique description."""
    for _ in range(50):
        width, height = (int(v) for v in rng.integers(160, 321, size=2))
        if abs(width - height) < 16:
            continue
        objs = _sample_objects(rng, width, height, int(rng.integers(2, 5)))
        if len(objs) < 2:
            continue
        anns = [_annotation(o, 0, 0) for o in objs]
        scene = [
            scene_object_from_ann(a, o['shape'], o['colour'])
            for a, o in zip(anns, objs)
        ]
        texts = [
            single_target_texts(scene, i, width, height)
            for i in range(len(objs))
        ]
        if all(any(t.values()) for t in texts):
            return width, height, objs, scene, texts
    raise RuntimeError('could not sample a describable scene')


def generate_synthetic_refer(
        out_root: str,
        num_train_images: int = 2000,
        num_val_images: int = 200,
        num_test_images: int = 200,
        seed: int = 0,
        img_ext: str = '.jpg',
        progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Write the synthetic dataset described in the module docstring.

    Args:
        out_root (str): Output root (created if needed).
        num_train_images (int): Images of split 'train'.
        num_val_images (int): Images of split 'val'.
        num_test_images (int): Images split into 'testA' and 'testB'.
        seed (int): Seed; equal seeds give byte-identical output.
        img_ext (str): '.jpg' or '.png'.
        progress (Callable, optional): Called as ``progress(done, total)``
            after each image.

    Returns:
        dict: Counts (``images``, ``refs`` and ``grefs`` per split,
        ``sentences``) and the ``img_prefix``.
    """
    total = num_train_images + num_val_images + num_test_images
    img_dir = osp.join(out_root, IMG_PREFIX)
    for d in (img_dir, osp.join(out_root,
                                REFER_NAME), osp.join(out_root, GREFER_NAME)):
        os.makedirs(d, exist_ok=True)
    images, annotations = [], []
    refer, grefer = _RefFile(grefer=False), _RefFile(grefer=True)
    # 4:4:4 chroma keeps colours right up to the edges of small shapes.
    encode = ([
        cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    ] if img_ext == '.jpg' else [cv2.IMWRITE_PNG_COMPRESSION, 1])
    for index in range(total):
        # One generator per image: an image does not depend on the counts.
        rng = np.random.default_rng([seed, index])
        split = _split_of(index, num_train_images, num_val_images,
                          num_test_images)
        width, height, objs, scene, texts = _scene(rng)
        image = dict(
            file_name=f'synth_{index + 1:06d}{img_ext}',
            height=height,
            width=width,
            id=index + 1)
        img = render_scene(rng, width, height, objs)
        ok, buf = cv2.imencode(img_ext, img[..., ::-1], encode)
        if not ok:
            raise RuntimeError(f'could not encode {image["file_name"]}')
        with open(osp.join(img_dir, image['file_name']), 'wb') as f:
            f.write(buf.tobytes())
        anns = [
            _annotation(o,
                        len(annotations) + k + 1, image['id'])
            for k, o in enumerate(objs)
        ]
        images.append(image)
        annotations.extend(anns)
        refer_plan, grefer_plan = _plan_refs(rng, scene, texts, width, height)
        for targets, sents in refer_plan:
            refer.add(targets, sents, image, split, anns, rng)
        for targets, sents in grefer_plan:
            grefer.add(targets, sents, image, split, anns, rng)
        if progress is not None:
            progress(index + 1, total)

    instances = json.dumps(
        dict(images=images, annotations=annotations, categories=CATEGORIES))
    for name in (REFER_NAME, GREFER_NAME):
        with open(osp.join(out_root, name, 'instances.json'), 'w') as f:
            f.write(instances)
    with open(osp.join(out_root, REFER_NAME, 'refs(unc).p'), 'wb') as f:
        pickle.dump(refer.refs, f, protocol=2)
    with open(osp.join(out_root, GREFER_NAME, 'grefs(unc).json'), 'w') as f:
        f.write(json.dumps(grefer.refs))

    return dict(
        images=len(images),
        annotations=len(annotations),
        refs=refer.per_split(),
        grefs=grefer.per_split(),
        sentences=refer.num_sentences,
        gsentences=grefer.num_sentences,
        img_prefix=IMG_PREFIX)
