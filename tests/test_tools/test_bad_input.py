# Copyright (c) mmrefseg contributors.
"""Bad input a user can hand us: each gets a clear error naming the problem,
or works; nothing finished is lost.

Counted in docs/scaling.md ("Bad input"): every case here is one row.
"""
import json
import os
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from tiny_run_config import write_tiny_config

from mmrefseg.registry import DATASETS, MODELS, TRANSFORMS

SELF1E = 'configs/self1e/self1e_tiny_synth.py'
MLLMSEG = 'configs/mllmseg/mllmseg_tiny_synth.py'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from mmrefseg.datasets.synthetic import generate_synthetic_refer
    root = tmp_path_factory.mktemp('bad_input') / 'data'
    generate_synthetic_refer(str(root), num_train_images=4, num_val_images=6,
                             num_test_images=2, seed=0)
    return str(root)


@pytest.fixture
def root_copy(data_root, tmp_path):
    """A private copy to break."""
    dst = tmp_path / 'data'
    shutil.copytree(data_root, dst)
    return str(dst)


@pytest.fixture(scope='module')
def tiny_cfg(data_root, tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'tiny.py'
    return Config.fromfile(write_tiny_config(SELF1E, str(path), data_root))


def _dataset(cfg, root, split='val', **kw):
    ds = dict(cfg.test_dataloader.dataset, data_root=root, split=split, **kw)
    return DATASETS.build(ds)


def _refs_file(root):
    return osp.join(root, 'synthrefcoco', 'refs(unc).p')


def _instances(root):
    return osp.join(root, 'synthrefcoco', 'instances.json')


# ---------------------------------------------------------------- data files
def test_data_root_missing(tiny_cfg, tmp_path):
    missing = str(tmp_path / 'no_such_root')
    with pytest.raises(FileNotFoundError, match='no_such_root'):
        _dataset(tiny_cfg, missing)


def test_refs_file_missing(tiny_cfg, root_copy):
    os.remove(_refs_file(root_copy))
    with pytest.raises(FileNotFoundError, match=r'refs\(unc\).p'):
        _dataset(tiny_cfg, root_copy)


def test_refs_file_truncated(tiny_cfg, root_copy):
    path = _refs_file(root_copy)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'refs\(unc\).p'):
        _dataset(tiny_cfg, root_copy)


def test_instances_missing(tiny_cfg, root_copy):
    os.remove(_instances(root_copy))
    with pytest.raises(FileNotFoundError, match='instances.json'):
        _dataset(tiny_cfg, root_copy)


def test_instances_truncated(tiny_cfg, root_copy):
    path = _instances(root_copy)
    text = open(path).read()
    open(path, 'w').write(text[:len(text) // 2])
    with pytest.raises(ValueError, match='instances.json'):
        _dataset(tiny_cfg, root_copy)


def test_ann_id_missing_from_instances(tiny_cfg, root_copy):
    path = _instances(root_copy)
    inst = json.load(open(path))
    refs = pickle.load(open(_refs_file(root_copy), 'rb'))
    val_ann = next(r['ann_id'] for r in refs if r['split'] == 'val')
    inst['annotations'] = [
        a for a in inst['annotations'] if a['id'] != val_ann
    ]
    json.dump(inst, open(path, 'w'))
    with pytest.raises(ValueError, match=f'{val_ann}'):
        _dataset(tiny_cfg, root_copy)


# -------------------------------------------------------------------- images
@pytest.fixture(scope='module')
def one_sample(tiny_cfg, data_root):
    """A val sample dict and the test pipeline of the tiny config."""
    ds = _dataset(tiny_cfg, data_root, lazy_init=True)
    ds.full_init()
    info = ds.get_data_info(0)
    from mmengine.dataset import Compose
    return info, Compose(tiny_cfg.test_dataloader.dataset.pipeline)


def _with_image(one_sample, tmp_path, img, ext='.png', params=()):
    info, pipeline = one_sample
    path = str(tmp_path / f'img{ext}')
    assert cv2.imwrite(path, img, list(params))
    h, w = img.shape[:2]
    sample = dict(info, img_path=path, height=h, width=w)
    for e in sample['expressions']:  # whole-image targets of the new size
        e['segmentations'] = [[[0, 0, w, 0, w, h, 0, h]]]
        e['bbox'] = [0, 0, w, h]
    return sample, pipeline


@pytest.mark.parametrize('keep', [0.5, 0.98])
def test_truncated_jpeg(one_sample, tmp_path, keep):
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8)
    sample, pipeline = _with_image(one_sample, tmp_path, img, '.jpg')
    data = open(sample['img_path'], 'rb').read()
    open(sample['img_path'], 'wb').write(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match='img.jpg.*corrupt'):
        pipeline(sample)


@pytest.mark.parametrize('kind', ['gray', 'rgba', 'palette', 'png16'])
def test_image_modes_load_as_rgb(one_sample, tmp_path, kind):
    from PIL import Image
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), np.uint8)
    path = str(tmp_path / f'{kind}.png')
    if kind == 'gray':
        Image.fromarray(rgb[..., 0], 'L').save(path)
    elif kind == 'rgba':
        Image.fromarray(np.dstack([rgb, rgb[..., :1]]), 'RGBA').save(path)
    elif kind == 'palette':
        Image.fromarray(rgb).convert('P').save(path)
    else:
        cv2.imwrite(path, rgb[..., ::-1].astype(np.uint16) * 257)
    info, pipeline = one_sample
    sample = _with_image(one_sample, tmp_path, rgb)[0]
    sample['img_path'] = path
    out = TRANSFORMS.build(dict(type='LoadRefImage'))(dict(sample))
    assert out['img'].shape == (40, 50, 3) and out['img'].dtype == np.uint8
    if kind == 'rgba':
        np.testing.assert_array_equal(out['img'], rgb)
    if kind == 'png16':  # 16-bit scaled to 8-bit, not clipped
        np.testing.assert_array_equal(out['img'], rgb)
    packed = pipeline(sample)
    assert torch.isfinite(packed['inputs']['pixel_values']).all()


@pytest.mark.parametrize('hw', [(1, 1), (4000, 6000)])
def test_extreme_image_sizes(one_sample, tmp_path, hw):
    img = np.full(hw + (3, ), 127, np.uint8)
    sample, pipeline = _with_image(one_sample, tmp_path, img, '.jpg')
    packed = pipeline(sample)
    assert packed['inputs']['pixel_values'].shape[-1] == 56
    assert packed['data_samples'].ori_shape == hw


# ------------------------------------------------------------------- phrases
@pytest.fixture(scope='module')
def tiny_model(tiny_cfg):
    model = MODELS.build(tiny_cfg.model)
    return model.eval()


def _phrase_batch(one_sample, text):
    info, pipeline = one_sample
    sample = dict(info)
    sample['expressions'] = [dict(e, text=text) for e in info['expressions']]
    return pseudo_collate([pipeline(sample)])


def test_empty_phrase(one_sample, tiny_model):
    # The model-side processor refuses it, naming the image and ref ids.
    batch = _phrase_batch(one_sample, '  ')
    with pytest.raises(ValueError, match=r'Expression\(s\) \[0\] of image '
                       r'.*synth_\d+\.jpg \(ref ids .*\) are empty'):
        tiny_model.test_step(batch)


@pytest.mark.parametrize('words', [300, 2000])
def test_phrase_longer_than_llm_context(one_sample, tiny_model, words):
    # Over the tiny LLM's 1,024 positions: refused when the conversation is
    # tokenised (the data preprocessor), naming the sample and the limit.
    limit = tiny_model.backbone.hf.config.text_config.max_position_embeddings
    batch = _phrase_batch(one_sample, ' '.join(['word'] * words))
    with pytest.raises(ValueError, match=f"model's context of {limit} "
                       f'tokens .*{words} words'):
        tiny_model.test_step(batch)
    # The backbone refuses such input_ids too when called directly.
    with pytest.raises(ValueError, match=f'max_position_embeddings={limit}'):
        tiny_model.backbone._check_context(
            torch.zeros(1, limit + 1, dtype=torch.long))


# ------------------------------------------------------- configs, CLI, hooks
@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy model/config of test_tools_cli.py, importable."""
    from test_tools_cli import TOY_CONFIG, TOY_MODULE
    (tmp_path / 'toy_refseg_model.py').write_text(TOY_MODULE)
    cfg_path = tmp_path / 'toy_cfg.py'
    cfg_path.write_text(TOY_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return str(cfg_path)


def _train(argv):
    from test_tools_cli import load_tool
    return load_tool('train').main(argv)


def test_misspelled_type(toy):
    with pytest.raises(KeyError, match='ToyRefModle'):
        _train([toy, '--cfg-options', 'model.type=ToyRefModle'])


def test_misspelled_top_level_cfg_option(toy):
    with pytest.raises(KeyError, match="'lod_level'.*did you mean "
                       "'log_level'"):
        _train([toy, '--cfg-options', 'lod_level=DEBUG'])


def test_misspelled_test_cfg_key(tiny_cfg):
    cfg = tiny_cfg.model.copy()
    cfg.test_cfg = dict(cfg.test_cfg, treshold=0.9)
    with pytest.raises(ValueError, match=r"\['treshold'\].*threshold"):
        MODELS.build(cfg)


def test_misspelled_hook_argument_fails_at_start(toy):
    # CheckpointHook would pass it to save_checkpoint at its first save.
    with pytest.raises(TypeError, match="save_optimiser.*did you mean "
                       "'save_optimizer'"):
        _train([toy, '--cfg-options',
                'default_hooks.checkpoint.save_optimiser=False'])
    assert not os.path.exists('work_dirs/toy_cfg/iter_2.pth')


def test_missing_checkpoint(toy):
    from test_tools_cli import load_tool
    with pytest.raises(FileNotFoundError, match='checkpoint not found: '
                       'nope.pth'):
        load_tool('test').main([toy, 'nope.pth'])
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _train([toy, '--resume', '--cfg-options', 'load_from=nope.pth'])


def test_resume_with_nothing_says_so_once(toy, monkeypatch):
    from test_tools_cli import load_tool
    train = load_tool('train')
    said = []
    monkeypatch.setattr(train, 'print_log',
                        lambda msg, **kwargs: said.append(msg))
    # A name of its own: MMLogger reuses an instance of the same name (a
    # runner built in the same second) and would not open this run's log.
    train.main([toy, '--resume', '--work-dir', 'fresh', '--cfg-options',
                'experiment_name=resume_once'])
    assert sum('nothing to resume' in m for m in said) == 1
    log = glob_one(osp.join('fresh', '*', '*.log'))
    text = open(log).read()
    assert 'Auto resumed' not in text
    assert 'Did not find last_checkpoint' not in text
    assert os.path.exists('fresh/iter_2.pth')


# ------------------------------------------- a corrupt image mid-evaluation
@pytest.mark.parametrize('mode', ['teacher_forced', 'generate'])
def test_corrupt_image_mid_evaluation_keeps_the_rest(
        data_root, tmp_path, mode):
    from mmengine.runner import Runner

    from mmrefseg.apis import use_tolerant_eval_loops
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    cfg = Config.fromfile(
        write_tiny_config(MLLMSEG, str(tmp_path / 'cfg.py'), root))
    cfg.model.test_cfg = dict(mode=mode, max_new_tokens=4)
    cfg.test_dataloader.batch_size = 2
    cfg.work_dir = str(tmp_path / 'work')
    use_tolerant_eval_loops(cfg)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    total = len(dataset)
    bad = paths[total // 2]  # the middle of the evaluation
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not a jpeg')
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    # One sample per expression: every batch holding one of the bad
    # image's expressions is lost, the others are scored.
    bad_batches = sorted({i // 2 for i, p in enumerate(paths) if p == bad})
    lost = sum(min(2, total - 2 * b) for b in bad_batches)
    skipped_file = glob_one(osp.join(cfg.work_dir, '*',
                                     'skipped_batches_test.json'))
    skipped = json.load(open(skipped_file))
    assert [s['batch'] for s in skipped] == bad_batches
    assert all(bad in s['error'] for s in skipped)
    assert sum(s['samples'] for s in skipped) == lost
    assert 0 < lost < total
    assert metrics['refseg/num_expressions'] == total - lost
    assert 0 <= metrics['refseg/cIoU'] <= 100


def glob_one(pattern):
    import glob
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_unreadable_data_everywhere_still_fails(data_root, tmp_path):
    """A wrong image folder is not "a few bad samples": the run stops."""
    from mmengine.runner import Runner

    from mmrefseg.apis import use_tolerant_eval_loops
    cfg = Config.fromfile(
        write_tiny_config(MLLMSEG, str(tmp_path / 'cfg.py'), data_root))
    cfg.test_dataloader.dataset.data_prefix = dict(img_path='wrong/folder')
    cfg.test_dataloader.batch_size = 1
    cfg.test_cfg = dict(type='TestLoop')
    use_tolerant_eval_loops(cfg)
    cfg.test_cfg.max_skipped_batches = 2
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(RuntimeError, match='more than 2 batches.*wrong/'
                       'folder'):
        Runner.from_cfg(cfg).test()
