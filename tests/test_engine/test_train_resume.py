# Copyright (c) mmrefseg contributors.
"""Integration: the tiny MLLMSeg config through MMEngine's Runner.

Training runs, checkpoints save and load through the safe loader, and a run
resumed from iteration 2 ends bit-identical to an uninterrupted one.
"""
import copy
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmrefseg.testing import tiny_internvl_config

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'mllmseg',
                  'mllmseg_hybrid_tiny_synth.py')


def _cfg(root: str, work_dir: str, max_iters: int) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.model.backbone.config = tiny_internvl_config(
        vit_width=32, vit_layers=1, llm_width=32, llm_layers=1,
        image_size=56, vocab_size=1024)
    cfg.model.neck.update(embed_dims=16, num_heads=2, ffn_channels=16)
    cfg.model.decode_head.update(embed_dims=16, num_heads=2, ffn_channels=16)
    for pipe in (cfg.train_pipeline, cfg.test_pipeline):
        pipe[2]['image_size'] = 56
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
    cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline
    cfg.val_dataloader.dataset.pipeline = cfg.test_pipeline
    cfg.val_dataloader.dataset.indices = 4
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0,
                                by_epoch=False)]
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=3)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    return cfg


def _weights(runner) -> dict:
    return {k: v.detach().clone() for k, v in
            runner.model.state_dict().items()}


def test_train_checkpoint_resume_identical(synthetic_root, tmp_path):
    full = Runner.from_cfg(_cfg(synthetic_root, str(tmp_path / 'full'), 4))
    full.train()
    metrics = full.val_loop.run()
    assert 'refseg/cIoU' in metrics
    ckpt2 = tmp_path / 'full' / 'iter_2.pth'
    assert ckpt2.exists() and (tmp_path / 'full' / 'iter_4.pth').exists()
    end = _weights(full)

    cfg = _cfg(synthetic_root, str(tmp_path / 'resumed'), 4)
    cfg.resume = True
    cfg.load_from = str(ckpt2)
    resumed = Runner.from_cfg(cfg)
    # The base runtime's CheckpointMatchHook checked the resumed file.
    assert any(type(h).__name__ == 'CheckpointMatchHook'
               for h in resumed.hooks)
    resumed.train()
    assert resumed.iter == 4
    again = _weights(resumed)
    assert end.keys() == again.keys()
    for key in end:
        assert torch.equal(end[key], again[key]), key

    # The checkpoint went through the allow-list loader: weights differ
    # from the iteration-2 state, which training did change.
    from mmrefseg.fileio import load_torch_file
    state2 = load_torch_file(str(ckpt2))['state_dict']
    assert any(not torch.equal(state2[k], end[k]) for k in state2)


def test_metric_and_loss_after_short_training_are_finite(synthetic_root,
                                                         tmp_path):
    cfg = _cfg(synthetic_root, str(tmp_path / 'short'), 2)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    hub = runner.message_hub
    assert torch.isfinite(torch.tensor(hub.get_scalar('train/loss')
                                       .current()))
