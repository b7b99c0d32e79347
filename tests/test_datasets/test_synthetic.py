# Copyright (c) mmrefseg contributors.
import filecmp
import json
import os
import runpy
import sys
from collections import defaultdict

import cv2
import numpy as np
import pytest

from mmrefseg.datasets.refer_io import segmentation_to_mask
from mmrefseg.datasets.synthetic import generate_synthetic_refer
from mmrefseg.datasets.synthetic_language import (
    COLOURS,
    EXPRESSION_KINDS,
    SHAPES,
    SceneObject,
    expression_kind,
    multi_target_texts,
    resolve_expression,
    scene_object_from_ann,
    single_target_texts,
)
from mmrefseg.datasets.transforms import LoadRefImage
from mmrefseg.fileio import load_plain_pickle

PALETTE = np.array(list(COLOURS.values()), np.float32)
NAMES = list(COLOURS)


def _load(root):
    with open(f'{root}/synthrefcoco/instances.json') as f:
        coco = json.load(f)
    refs = load_plain_pickle(f'{root}/synthrefcoco/refs(unc).p')
    with open(f'{root}/grefcoco/grefs(unc).json') as f:
        grefs = json.load(f)
    return coco, refs, grefs


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs)


def test_layout_and_determinism(tmp_path):
    kw = dict(num_train_images=3, num_val_images=1, num_test_images=2)
    a, b, c = (str(tmp_path / n) for n in 'abc')
    generate_synthetic_refer(a, seed=1, **kw)
    generate_synthetic_refer(b, seed=1, **kw)
    generate_synthetic_refer(c, seed=2, **kw)
    files = _files(a)
    assert files == _files(b) == [
        'grefcoco/grefs(unc).json', 'grefcoco/instances.json',
        *[f'images/synthetic/synth_{i:06d}.jpg' for i in range(1, 7)],
        'synthrefcoco/instances.json', 'synthrefcoco/refs(unc).p'
    ]
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    assert not filecmp.cmp(
        f'{a}/synthrefcoco/refs(unc).p',
        f'{c}/synthrefcoco/refs(unc).p',
        shallow=False)
    # Protocol-2 pickle of plain refs, as REFER's files.
    with open(f'{a}/synthrefcoco/refs(unc).p', 'rb') as f:
        assert f.read(2) == b'\x80\x02'
    coco, refs, grefs = _load(a)
    assert [r['split'] for r in refs if r['image_id'] in (4, 5, 6)][0] == \
        'val'
    assert {r['split'] for r in refs} == {'train', 'val', 'testA', 'testB'}
    ref = refs[0]
    assert set(ref) == {
        'ref_id', 'ann_id', 'category_id', 'image_id', 'file_name', 'split',
        'sent_ids', 'sentences'
    }
    assert set(ref['sentences'][0]) == {'raw', 'sent', 'sent_id', 'tokens'}
    assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
    assert all(
        isinstance(r['ann_id'], list) and 'no_target' in r for r in grefs)
    assert {c['name'] for c in coco['categories']} == set(SHAPES)


def test_cli(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'cli'
    monkeypatch.setattr(sys, 'argv', [
        'generate_synthetic_refer.py', '--out',
        str(out), '--num-train', '2', '--num-val', '1', '--num-test', '2',
        '--seed', '0'
    ])
    runpy.run_path(
        'tools/dataset_converters/generate_synthetic_refer.py',
        run_name='__main__')
    text = capsys.readouterr().out
    assert '[5/5]' in text and 'wrote 5 images' in text
    assert (out / 'synthrefcoco' / 'refs(unc).p').is_file()


def _scene_from_files(img, anns, cats):
    """Rebuild the scene from the files; colours are read off the pixels."""
    h, w = img.shape[:2]
    masks = [segmentation_to_mask(a['segmentation'], h, w) for a in anns]
    scene = []
    for a, m in zip(anns, masks):
        core = cv2.erode(m, np.ones((5, 5), np.uint8)).astype(bool)
        colour = np.median(img[core].astype(np.float32), axis=0)
        dist = np.linalg.norm(PALETTE - colour, axis=1)
        assert dist.min() < 30, (a['id'], colour)
        scene.append(
            scene_object_from_ann(a, cats[a['category_id']],
                                  NAMES[int(dist.argmin())]))
    return scene, masks


def test_images_masks_and_expressions(synthetic_root):
    coco, refs, grefs = _load(synthetic_root)
    cats = {c['id']: c['name'] for c in coco['categories']}
    anns_of = defaultdict(list)
    for a in coco['annotations']:
        anns_of[a['image_id']].append(a)
    refs_of, grefs_of = defaultdict(list), defaultdict(list)
    for r in refs:
        refs_of[r['image_id']].append(r)
    for r in grefs:
        grefs_of[r['image_id']].append(r)
    loader = LoadRefImage()
    kinds = set()
    for info in coco['images']:
        h, w = info['height'], info['width']
        assert 160 <= h <= 320 and 160 <= w <= 320 and h != w
        img = loader(
            dict(
                img_path=f'{synthetic_root}/images/synthetic/'
                f'{info["file_name"]}',
                height=h,
                width=w))['img']
        anns = anns_of[info['id']]
        assert 2 <= len(anns) <= 4
        scene, masks = _scene_from_files(img, anns, cats)
        for k, (obj, m) in enumerate(zip(scene, masks)):
            # Pixels of the object's colour (in its box, outside the
            # others) are the decoded polygon, up to edge pixels.
            near = np.linalg.norm(
                img.astype(np.float32) - COLOURS[obj.colour], axis=2) < 60
            x, y, bw, bh = anns[k]['bbox']
            box = np.zeros_like(m, dtype=bool)
            box[int(y):int(np.ceil(y + bh)) + 1,
                int(x):int(np.ceil(x + bw)) + 1] = True
            others = np.zeros_like(box)
            for j, mj in enumerate(masks):
                others |= (mj > 0) & (j != k)
            drawn = near & box & ~others
            iou = (drawn & (m > 0)).sum() / (drawn | (m > 0)).sum()
            assert iou > 0.9, (info['id'], anns[k]['id'], iou)
        assert not np.any(np.sum(masks, axis=0) > 1)  # no overlaps
        index = {a['id']: i for i, a in enumerate(anns)}
        # One ref per object, each sentence singles out its object.
        img_refs = refs_of[info['id']]
        assert len(img_refs) == len(anns) >= 2
        texts = [s['sent'] for r in img_refs for s in r['sentences']]
        assert len(texts) == len(set(texts))
        for r in img_refs:
            assert 2 <= len(r['sentences']) <= 3
            for s in r['sentences']:
                assert resolve_expression(s['sent'], scene, w, h) == \
                    frozenset([index[r['ann_id']]]), s['sent']
                assert s['tokens'] == s['sent'].split()
                assert s['raw'].rstrip('.').lower() == s['sent']
        for r in grefs_of[info['id']]:
            target = frozenset(index[a] for a in r['ann_id'] if a != -1)
            assert r['no_target'] == (r['ann_id'] == [-1])
            kinds.add('none' if r['no_target'] else min(len(target), 2))
            for s in r['sentences']:
                assert resolve_expression(s['sent'], scene, w, h) == \
                    target, s['sent']
    assert kinds == {'none', 1, 2}


@pytest.mark.parametrize(
    'text,expected',
    [
        ('the red shape', {0, 2}),  # literal set: ambiguous
        ('the blue circle', {1}),
        ('the leftmost shape', {0}),
        ('the shape on the right', None),  # x=150 vs 155: too close to call
        ('the bottom one', {2}),
        ('the biggest circle', {1}),
        ('the smaller circle', {0}),
        ('the bigger shape', None),  # comparative needs exactly two
        ('all red shapes', {0, 2}),
        ('both circles', {0, 1}),
        ('the three circles', None),
        ('the red circle and the blue circle', {0, 1}),
        ('the green star', set()),  # no target
        ('the red blue circle', None),
    ])
def test_resolver(text, expected):
    scene = [
        SceneObject('circle', 'red', 20, 20, 400),
        SceneObject('circle', 'blue', 150, 30, 1200),
        SceneObject('square', 'red', 155, 150, 500)
    ]
    got = resolve_expression(text, scene, 200, 200)
    assert got == (None if expected is None else frozenset(expected))


def test_expression_kind_recovers_the_template_family():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        scene = [
            SceneObject(SHAPES[rng.integers(len(SHAPES))],
                        list(COLOURS)[rng.integers(2)], *rng.uniform(
                            10, 190, size=2), float(rng.uniform(100, 900)))
            for _ in range(int(rng.integers(2, 5)))
        ]
        for i in range(len(scene)):
            for kind, texts in single_target_texts(scene, i, 200, 200).items():
                for text in texts:
                    assert expression_kind(text) == kind, text
                    seen.add(kind)
        for texts in multi_target_texts(scene, 200, 200).values():
            for text in texts:
                assert expression_kind(text) == 'multi', text
                seen.add('multi')
    assert seen == set(EXPRESSION_KINDS)
    assert expression_kind('The red star on the LEFT.') == 'position'
