# Copyright (c) mmrefseg contributors.
"""projects/mmseg_text_decoder and the projects/README.md example build and
train under MMSeg's default scope."""
import math
import os.path as osp
import re
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from repo_scripts import REPO, load_script

from mmrefseg.registry import DATASETS, MODELS

PROJECT_CFG = osp.join(
    REPO, 'projects', 'mmseg_text_decoder', 'configs',
    'dsff-decoder_r18-bert_synthrefcoco-160x160.py')
README = osp.join(REPO, 'projects', 'README.md')


@pytest.fixture
def restore_scope():
    """The runner makes 'mmseg' the current scope; give the next tests
    back the one they had."""
    before = DefaultScope.get_current_instance()
    yield
    if before is not None:
        DefaultScope.get_instance(f'restore-{uuid.uuid4().hex}',
                                  scope_name=before.scope_name)


class _RecordLosses(Hook):
    """Keeps the loss dict of every training iteration."""

    def __init__(self) -> None:
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.losses.append({k: float(v) for k, v in outputs.items()})


def test_project_config_trains_one_step_and_evaluates(
        synthetic_root, tmp_path, restore_scope):
    cfg = Config.fromfile(PROJECT_CFG)
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.type == 'mmrefseg.TextEncoderDecoder'
    cfg.work_dir = str(tmp_path)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.dataset.data_root = synthetic_root
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2
    cfg.val_dataloader.dataset.indices = 3
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 10**6
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**6)
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    record = _RecordLosses()
    runner.register_hook(record)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    assert len(record.losses) == 1
    losses = record.losses[0]
    assert {'decode.loss_focal', 'decode.loss_dice'} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    after = runner.model.state_dict()
    changed = {k.split('.')[0] for k in before
               if before[k].is_floating_point()
               and not torch.equal(before[k], after[k])}
    assert {'backbone', 'text_encoder', 'decode_head'} <= changed
    metrics = runner.val()
    assert type(runner.val_loop.evaluator.metrics[0]).__name__ == \
        'RefSegMetric'
    assert 0.0 <= metrics['refseg/cIoU'] <= 100.0
    # tools/test.py on its checkpoint: the evaluation loops it swaps in
    # must resolve under default_scope='mmseg' too.
    runner.save_checkpoint(str(tmp_path), 'one_step.pth')
    test_tool = load_script('tools/test.py')
    test_tool.main([
        PROJECT_CFG, str(tmp_path / 'one_step.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={synthetic_root}',
        'test_dataloader.dataset.indices=3', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ])
    assert 'refseg/cIoU' in open(_one(str(tmp_path / 'test' / '*' /
                                          '*.log'))).read()


def _one(pattern: str) -> str:
    import glob
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def _readme_example() -> str:
    """The config of the README's 'Inside an MMSeg project' example."""
    text = open(README, encoding='utf-8').read()
    match = re.search(
        r'<!-- example: mmseg scope -->\s*```python\n(.*?)```', text, re.S)
    assert match, 'projects/README.md lost its tested example'
    return match.group(1)


def test_readme_mmseg_scope_example_builds_and_trains(
        synthetic_root, tmp_path, restore_scope):
    cfg_file = tmp_path / 'readme_example.py'
    cfg_file.write_text(_readme_example())
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmseg'
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        dataset = DATASETS.build(
            dict(type='mmrefseg.RefCOCODataset', data_root=synthetic_root,
                 dataset_name='synthrefcoco', split='train',
                 data_prefix=dict(img_path='images/synthetic'),
                 max_expressions_per_sample=2,
                 pipeline=[
                     dict(type='mmrefseg.LoadRefImage'),
                     dict(type='Resize', scale=(64, 64), keep_ratio=False),
                     dict(type='mmrefseg.LoadRefMasks'),
                     dict(type='mmrefseg.PackRefImageInputs'),
                 ]))
        data = pseudo_collate([dataset[0], dataset[1]])
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
        losses = model.train_step(data, optim)
        assert math.isfinite(float(losses['loss']))
        model.eval()
        out = model.val_step(data)
        h, w = data['data_samples'][0].metainfo['ori_shape']
        k = len(data['data_samples'][0].metainfo['texts'])
        assert out[0].pred_sem_seg.data.shape == (k, h, w)
        evaluator = cfg.val_evaluator
        assert evaluator['type'] == 'mmrefseg.RefSegMetric'
