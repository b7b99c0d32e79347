# Copyright (c) mmrefseg contributors.
"""tools/train.py and tools/test.py: argument handling and a 2-iteration run
of a toy model on CPU."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from repo_scripts import REPO, load_script

# A toy model and dataset registered in mmrefseg's registries. Predictions
# copy the GT for even img_id and are empty for odd ones, so 3 val samples
# (ids 0, 1, 2; GT 4 px each) give cIoU = (4 + 0 + 4) / (4 + 4 + 4).
TOY_MODULE = '''
import torch
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch.utils.data import Dataset

from mmrefseg.registry import DATASETS, MODELS


@DATASETS.register_module()
class ToyRefDataset(Dataset):

    def __init__(self, num=4):
        self.num = num

    def __len__(self):
        return self.num

    def __getitem__(self, idx):
        gt = torch.zeros(1, 4, 4, dtype=torch.uint8)
        gt[0, :2, :2] = 1
        sample = SegDataSample(metainfo=dict(img_id=idx))
        sample.gt_sem_seg = PixelData(data=gt)
        return dict(inputs=torch.full((2, ), float(idx)),
                    data_samples=sample)


@MODELS.register_module()
class ToyRefModel(BaseModel):

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        if mode == 'predict':
            for sample in data_samples:
                gt = sample.gt_sem_seg.data
                keep = sample.img_id % 2 == 0
                sample.pred_sem_seg = PixelData(
                    data=gt.clone() if keep else torch.zeros_like(gt))
            return data_samples
        return out
'''

TOY_CONFIG = '''
default_scope = 'mmrefseg'
custom_imports = dict(imports=['toy_refseg_model'], allow_failed_imports=False)
model = dict(type='ToyRefModel')
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ToyRefDataset', num=4))
val_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyRefDataset', num=3))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
    logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
'''


def load_tool(name: str):
    return load_script(f'tools/{name}.py')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Write the toy module and config; make the module importable."""
    (tmp_path / 'toy_refseg_model.py').write_text(TOY_MODULE)
    cfg_path = tmp_path / 'toy_cfg.py'
    cfg_path.write_text(TOY_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return cfg_path


def test_train_args_and_config(toy):
    train = load_tool('train')
    args = train.parse_args([
        str(toy), '--cfg-options', 'train_cfg.max_iters=5', 'optim_wrapper'
        '.optimizer.lr=0.5', '--launcher', 'none'
    ])
    assert not args.resume and not args.amp
    cfg = train.build_cfg(args)
    assert cfg.train_cfg.max_iters == 5
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.launcher == 'none' and cfg.resume is False
    # default work_dir: ./work_dirs/<config stem>
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_cfg')
    # the config's own work_dir beats the default, the CLI beats both
    cfg = train.build_cfg(
        train.parse_args([str(toy), '--cfg-options', 'work_dir=wd_cfg']))
    assert cfg.work_dir == 'wd_cfg'
    resume_args = train.parse_args([
        str(toy), '--work-dir', 'wd_cli', '--resume', '--cfg-options',
        'work_dir=wd_cfg'
    ])
    # --resume with nothing in the work_dir trains from scratch ...
    cfg = train.build_cfg(resume_args)
    assert cfg.work_dir == 'wd_cli' and cfg.resume is False
    # ... and resumes once CheckpointHook has written last_checkpoint.
    os.makedirs('wd_cli')
    ckpt = osp.abspath('wd_cli/iter_2.pth')
    open(ckpt, 'wb').close()
    with open('wd_cli/last_checkpoint', 'w') as f:
        f.write(ckpt)
    assert train.build_cfg(resume_args).resume is True


def test_train_amp(toy):
    train = load_tool('train')
    cfg = train.build_cfg(train.parse_args([str(toy), '--amp']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert 'dtype' not in cfg.optim_wrapper
    # a config that asks for bf16
    cfg = train.build_cfg(
        train.parse_args(
            [str(toy), '--amp', '--cfg-options', 'amp_dtype=bfloat16']))
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    # an AmpOptimWrapper already in the config is kept as it is
    cfg = Config(
        dict(optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16')))
    train.apply_amp(cfg)
    assert cfg.optim_wrapper == dict(type='AmpOptimWrapper', dtype='bfloat16')
    with pytest.raises(ValueError, match='DeepSpeedOptimWrapper'):
        train.apply_amp(
            Config(dict(optim_wrapper=dict(type='DeepSpeedOptimWrapper'))))


def test_runner_type_uses_registry(toy, tmp_path):
    from mmengine.runner import FlexibleRunner, Runner

    from mmrefseg.registry import RUNNERS

    @RUNNERS.register_module(force=True)
    class ToyRunner(Runner):
        pass

    train = load_tool('train')
    cfg = train.build_cfg(
        train.parse_args([
            str(toy), '--work-dir',
            str(tmp_path / 'wd_runner'), '--cfg-options',
            'runner_type=ToyRunner'
        ]))
    assert type(train.build_runner(cfg)) is ToyRunner
    # MMEngine's FlexibleRunner (FSDP / DeepSpeed strategies) from a config
    cfg.runner_type = 'FlexibleRunner'
    assert isinstance(train.build_runner(cfg), FlexibleRunner)
    cfg = train.build_cfg(
        train.parse_args([str(toy), '--work-dir',
                          str(tmp_path / 'wd_runner')]))
    assert type(train.build_runner(cfg)) is Runner


def test_test_args_visualization_and_out(toy):
    test = load_tool('test')
    args = test.parse_args([
        str(toy), 'ckpt.pth', '--show-dir', 'vis', '--show', '--wait-time',
        '0.5', '--out', 'preds.pkl'
    ])
    with pytest.raises(FileNotFoundError, match='checkpoint not found: ckpt'):
        test.build_cfg(args)  # before anything is built
    open('ckpt.pth', 'wb').close()
    cfg = test.build_cfg(args)
    assert cfg.load_from == 'ckpt.pth'
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_cfg')
    # no visualization hook in the toy config: left alone, with a warning
    assert 'visualization' not in cfg.default_hooks
    assert cfg.test_evaluator == [
        dict(type='RefSegMetric'),
        dict(type='DumpResults', out_file_path='preds.pkl')
    ]
    # with a hook and a visualizer, drawing is switched on
    cfg = Config(
        dict(
            default_hooks=dict(
                visualization=dict(type='SegVisualizationHook')),
            visualizer=dict(type='SegLocalVisualizer')))
    test.trigger_visualization_hook(cfg, args)
    assert cfg.default_hooks.visualization == dict(
        type='SegVisualizationHook', draw=True, show=True, wait_time=0.5)
    assert cfg.visualizer.save_dir == 'vis'
    # an Evaluator config gets the dump in its metrics
    cfg = Config(
        dict(test_evaluator=dict(type='Evaluator', metrics=dict(type='M'))))
    test.add_dump_results(cfg, 'x.pkl')
    assert cfg.test_evaluator.metrics[-1].type == 'DumpResults'
    with pytest.raises(ValueError, match='.pkl'):
        test.add_dump_results(cfg, 'x.json')


def _run_tool(args, cwd):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(cwd), REPO, env.get('PYTHONPATH', '')])
    # keep the shared CPUs calm
    env.setdefault('OMP_NUM_THREADS', '1')
    return subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120)


def test_train_then_test_subprocess(toy, tmp_path):
    proc = _run_tool([osp.join(REPO, 'tools', 'train.py'), str(toy)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work_dir = tmp_path / 'work_dirs' / 'toy_cfg'
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    assert (work_dir /
            'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert logs
    log = open(logs[0]).read()
    assert 'Iter(train) [2/2]' in log
    # the val loop ran RefSegMetric: cIoU = 8 / 12
    assert 'refseg/cIoU: 66.6667' in log

    out = tmp_path / 'preds.pkl'
    proc = _run_tool([
        osp.join(REPO, 'tools', 'test.py'),
        str(toy),
        str(ckpt), '--work-dir',
        str(tmp_path / 'wd_test'), '--out',
        str(out), '--show-dir', 'vis'
    ], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert 'Load checkpoint from' in text
    assert 'refseg/cIoU: 66.6667' in text
    assert 'has no `default_hooks.visualization`' in text
    assert out.is_file()


def test_dist_scripts_are_valid_bash():
    for name in ('dist_train.sh', 'dist_test.sh'):
        path = osp.join(REPO, 'tools', name)
        assert subprocess.run(['bash', '-n', path]).returncode == 0
        assert 'torch.distributed.run' in open(path).read()
