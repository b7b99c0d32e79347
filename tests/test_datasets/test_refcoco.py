# Copyright (c) mmrefseg contributors.
import json
import pickle
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from mmrefseg.datasets import RefCOCODataset
from mmrefseg.registry import DATASETS

SYNTH = dict(
    dataset_name='synthrefcoco',
    split_by='unc',
    data_prefix=dict(img_path='images/synthetic'))
SAMPLE_KEYS = {
    'img_path', 'img_id', 'height', 'width', 'dataset_name', 'expressions',
    'sample_idx', 'test_grouping'  # test samples say how to write them
}
EXPR_KEYS = {
    'text', 'ref_id', 'sent_id', 'ann_ids', 'no_target', 'bbox',
    'segmentations'
}


def _refs(root):
    with open(f'{root}/synthrefcoco/refs(unc).p', 'rb') as f:
        return pickle.load(f)


def _draws(ds, indices):
    return [
        tuple((e['ref_id'], e['sent_id'])
              for e in ds.get_data_info(i)['expressions']) for i in indices
    ]


def test_counts_per_mode(synthetic_root):
    refs = [r for r in _refs(synthetic_root) if r['split'] == 'train']
    test = RefCOCODataset(
        synthetic_root, split='train', test_mode=True, **SYNTH)
    assert len(test) == sum(len(r['sentences']) for r in refs)
    pairs = [(e['ref_id'], e['sent_id']) for i in range(len(test))
             for e in test.get_data_info(i)['expressions']]
    assert pairs == [(r['ref_id'], s['sent_id']) for r in refs
                     for s in r['sentences']]
    train = RefCOCODataset(synthetic_root, split='train', seed=0, **SYNTH)
    assert len(train) == len(refs)
    packed = RefCOCODataset(
        synthetic_root,
        split='train',
        seed=0,
        max_expressions_per_sample=5,
        **SYNTH)
    assert len(packed) == len({r['image_id'] for r in refs})
    # REFER split rule: 'test' = testA + testB.
    n = {
        s:
        len(RefCOCODataset(synthetic_root, split=s, test_mode=True, **SYNTH))
        for s in ('testA', 'testB', 'test')
    }
    assert n['test'] == n['testA'] + n['testB'] > 0


def test_sample_contract(synthetic_root):
    ds = RefCOCODataset(synthetic_root, split='val', test_mode=True, **SYNTH)
    refs = {r['ref_id']: r for r in _refs(synthetic_root)}
    with open(f'{synthetic_root}/synthrefcoco/instances.json') as f:
        coco = json.load(f)
    anns = {a['id']: a for a in coco['annotations']}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert set(info) == SAMPLE_KEYS
        assert info['img_path'].startswith(
            f'{synthetic_root}/images/synthetic/')
        assert info['dataset_name'] == 'synthrefcoco'
        (expr, ) = info['expressions']
        assert set(expr) == EXPR_KEYS
        ref = refs[expr['ref_id']]
        assert expr['ann_ids'] == [ref['ann_id']] and not expr['no_target']
        assert expr['text'] in [s['sent'] for s in ref['sentences']]
        x, y, w, h = anns[ref['ann_id']]['bbox']
        assert expr['bbox'] == pytest.approx([x, y, x + w, y + h])
        assert expr['segmentations'] == [anns[ref['ann_id']]['segmentation']]
    meta = ds.metainfo
    assert meta['classes'] == ('background', 'foreground')
    assert len(meta['palette']) == 2


def test_packing_draws_distinct_pairs_of_one_image(synthetic_root):
    ds = RefCOCODataset(
        synthetic_root,
        split='train',
        seed=3,
        max_expressions_per_sample=3,
        **SYNTH)
    refs = {r['ref_id']: r for r in _refs(synthetic_root)}
    sizes = Counter()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        exprs = info['expressions']
        pairs = {(e['ref_id'], e['sent_id']) for e in exprs}
        available = sum(
            len(r['sentences']) for r in refs.values()
            if r['image_id'] == info['img_id'])
        assert len(pairs) == len(exprs) == min(3, available)
        assert all(refs[e['ref_id']]['image_id'] == info['img_id']
                   for e in exprs)
        sizes[len(exprs)] += 1
    assert sizes[3] > 0


def test_train_draws_reproducible_and_vary_per_epoch(synthetic_root):
    idx = list(range(20))
    kw = dict(split='train', max_expressions_per_sample=2, **SYNTH)
    a = RefCOCODataset(synthetic_root, seed=7, **kw)
    b = RefCOCODataset(synthetic_root, seed=7, **kw)
    first = _draws(a, idx)
    assert first == _draws(b, idx)  # same seed, same draws
    second = _draws(a, idx)  # "next epoch" in this process
    assert second == _draws(b, idx)
    assert second != first
    other = _draws(RefCOCODataset(synthetic_root, seed=8, **kw), idx)
    assert other != first
    # Unpacked training: one expression of the ref, sentence varies.
    single = RefCOCODataset(synthetic_root, split='train', seed=0, **SYNTH)
    seen = {s for _ in range(8) for s in _draws(single, [0])}
    assert len(seen) > 1 and all(len(s) == 1 for s in seen)


def test_draws_differ_across_workers_and_ranks(synthetic_root, monkeypatch):
    ds = RefCOCODataset(
        synthetic_root,
        split='train',
        seed=0,
        max_expressions_per_sample=2,
        **SYNTH)
    idx = list(range(20))
    fetched = {}
    for wid in (0, 1):
        ds._draw_counts.clear()
        monkeypatch.setattr(
            'torch.utils.data.get_worker_info',
            lambda w=wid: SimpleNamespace(id=w, seed=123))
        fetched[wid] = _draws(ds, idx)
    assert fetched[0] != fetched[1]
    ds._draw_counts.clear()
    monkeypatch.setattr('torch.utils.data.get_worker_info', lambda: None)
    monkeypatch.setattr('mmrefseg.datasets.refer_base.get_rank', lambda: 1)
    assert _draws(ds, idx) not in (fetched[0], fetched[1])


def test_real_dataloader_workers_epochs(synthetic_root):
    ds = RefCOCODataset(
        synthetic_root,
        split='train',
        seed=0,
        max_expressions_per_sample=2,
        **SYNTH)

    def epochs(n):
        torch.manual_seed(0)
        loader = DataLoader(
            ds,
            batch_size=4,
            num_workers=2,
            collate_fn=lambda batch: [
                tuple((e['ref_id'], e['sent_id']) for e in s['expressions'])
                for s in batch
            ])
        return [[p for batch in loader for p in batch] for _ in range(n)]

    run1 = epochs(2)
    assert run1[0] != run1[1]  # fresh workers, fresh draws
    assert epochs(1)[0] == run1[0]  # reproducible under the seed


def test_registry_build_with_pipeline(synthetic_root):
    cfg = dict(
        type='RefCOCODataset',
        data_root=synthetic_root,
        split='testA',
        test_mode=True,
        pipeline=[dict(type='LoadRefImage'),
                  dict(type='LoadRefMasks')],
        **SYNTH)
    with DefaultScope.overwrite_default_scope('mmrefseg'):
        ds = DATASETS.build(cfg)
        out = ds[0]
    assert out['img'].shape == (out['height'], out['width'], 3)
    assert out['gt_masks'].shape == (1, out['height'], out['width'])
    assert out['gt_masks'].sum() > 0


def test_python2_refer_files(refer_tree):
    ds = RefCOCODataset(
        refer_tree['root'],
        dataset_name='refcoco',
        split_by='unc',
        split='test',
        test_mode=True,
        pipeline=[])
    # 'test' keeps testA and testB refs, one sample per sentence.
    assert [(e['ref_id'], e['sent_id'], e['text']) for i in range(len(ds))
            for e in ds.get_data_info(i)['expressions']
            ] == [(2, 102, 'right box'), (3, 200, 'top thing'),
                  (3, 201, 'upper one')]
    assert ds.get_data_info(0)['img_path'] == (
        f'{refer_tree["img_dir"]}/COCO_train2014_000000000001.jpg')
    train = RefCOCODataset(refer_tree['root'], split='train', test_mode=True)
    # An empty 'sent' falls back to 'raw' (a py2 unicode here).
    assert [
        train.get_data_info(i)['expressions'][0]['text']
        for i in range(len(train))
    ] == ['the left box', 'caf\xe9 box']


def test_missing_files_and_ids(refer_tree, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        RefCOCODataset(str(tmp_path), dataset_name='refcoco+', split='val')
    assert 'refcoco+/refs(unc).p' in str(err.value)
    assert 'instances.json' in str(err.value)
    with pytest.raises(ValueError, match=r"splits present: \['testA'"):
        RefCOCODataset(refer_tree['root'], split='trainval')

    with open(refer_tree['instances']) as f:
        coco = json.load(f)
    coco['annotations'] = [a for a in coco['annotations'] if a['id'] != 22]
    with open(refer_tree['instances'], 'w') as f:
        json.dump(coco, f)
    with pytest.raises(ValueError, match=r'ref_id 4 .*ann_id 22'):
        RefCOCODataset(refer_tree['root'], split='val')
    coco['images'] = coco['images'][1:]
    with open(refer_tree['instances'], 'w') as f:
        json.dump(coco, f)
    with pytest.raises(ValueError, match=r'ref_id 1 .*image_id 1'):
        RefCOCODataset(refer_tree['root'], split='train')


def test_bad_arguments(refer_tree):
    with pytest.raises(ValueError, match='max_expressions_per_sample'):
        RefCOCODataset(refer_tree['root'], max_expressions_per_sample=0)
    # seed=None follows torch's seed, so it is reproducible under it.
    torch.manual_seed(5)
    a = RefCOCODataset(refer_tree['root'], split='train')
    torch.manual_seed(5)
    b = RefCOCODataset(refer_tree['root'], split='train')
    assert a.seed == b.seed == 5
    assert _draws(a, [0]) == _draws(b, [0])


def test_image_grouping_gives_all_sentences_of_an_image(synthetic_root):
    """test_grouping='image' / 'image_one_prompt': every sentence of an
    image in one sample (the latter is MLLMSeg's ValDataset unit)."""
    refs = [r for r in _refs(synthetic_root) if r['split'] == 'val']
    per_expr = RefCOCODataset(
        synthetic_root, split='val', test_mode=True, **SYNTH)
    per_image = RefCOCODataset(
        synthetic_root,
        split='val',
        test_mode=True,
        test_grouping='image',
        **SYNTH)
    images = list(dict.fromkeys(r['image_id'] for r in refs))
    assert len(per_image) == len(images)
    assert [per_image.get_data_info(i)['img_id']
            for i in range(len(per_image))] == images
    for i, image_id in enumerate(images):
        info = per_image.get_data_info(i)
        assert set(info) == SAMPLE_KEYS
        # Every sentence of every ref of the image, in file order.
        assert [(e['ref_id'], e['sent_id']) for e in info['expressions']] == [
            (r['ref_id'], s['sent_id']) for r in refs
            if r['image_id'] == image_id for s in r['sentences']
        ]
        assert all(set(e) == EXPR_KEYS for e in info['expressions'])
    # Same expressions as the per-expression protocol, regrouped.
    flat = sorted(
        (e['ref_id'], e['sent_id'], e['text']) for i in range(len(per_image))
        for e in per_image.get_data_info(i)['expressions'])
    assert flat == sorted((e['ref_id'], e['sent_id'], e['text'])
                          for i in range(len(per_expr))
                          for e in per_expr.get_data_info(i)['expressions'])
    assert max(len(per_image.get_data_info(i)['expressions'])
               for i in range(len(per_image))) > 1
    # The sample says how the model writes it; the two image groupings
    # differ only there.
    one_prompt = RefCOCODataset(synthetic_root, split='val', test_mode=True,
                                test_grouping='image_one_prompt', **SYNTH)
    for i in range(len(per_image)):
        a, b = per_image.get_data_info(i), one_prompt.get_data_info(i)
        assert (a.pop('test_grouping'), b.pop('test_grouping')) == (
            'image', 'image_one_prompt')
        assert a == b
    assert per_expr.get_data_info(0)['test_grouping'] == 'expression'
    # Training ignores the option.
    train = RefCOCODataset(
        synthetic_root, split='train', seed=0, test_grouping='image', **SYNTH)
    assert len(train) == len(
        [r for r in _refs(synthetic_root) if r['split'] == 'train'])
    with pytest.raises(ValueError, match='test_grouping'):
        RefCOCODataset(synthetic_root, split='val', test_mode=True,
                       test_grouping='ref', **SYNTH)


def test_image_one_prompt_pipeline_writes_the_paper_prompt(synthetic_root):
    """A per-image sample through a pipeline, then the MLLMSeg paper-eval
    prompt written by the model's processor."""
    from mmengine.dataset import pseudo_collate

    from mmrefseg.models.data_preprocessor import RefSegDataPreProcessor
    from mmrefseg.models.processors import SEG, InternVLProcessor
    from mmrefseg.utils.tokenizer import build_tokenizer
    tok = dict(type='tiny_bpe', vocab_size=1024)
    ds = DATASETS.build(
        dict(type='RefCOCODataset', data_root=synthetic_root,
             test_mode=True, test_grouping='image_one_prompt', **SYNTH,
             pipeline=[
                 dict(type='LoadRefImage'),
                 dict(type='LoadRefMasks'),
                 dict(type='InternVLImageTransform', image_size=56),
                 dict(type='PackRefSegInputs'),
             ]))
    sample = ds[0]
    texts = sample['data_samples'].texts
    assert len(texts) > 1
    assert sample['data_samples'].gt_masks.shape[0] == len(texts)
    names = [t.strip().lower() for t in texts]
    tokenizer = build_tokenizer(tok, ('[SEG]', '[REJ]'))
    pre = RefSegDataPreProcessor()
    pre.set_processor(InternVLProcessor(
        tokenizer, 4, test_prompt_style='mllmseg_paper_eval'))
    batch = pre(pseudo_collate([sample]), False)
    text = tokenizer.decode(batch['inputs']['input_ids'][0])
    assert (' What are ' + ', '.join(names) +
            'in this image? Please output segmentation masks.') in text
    assert 'Sure,' + ', '.join(f'{n}:{SEG}' for n in names) + '.' in text
