# Copyright (c) mmrefseg contributors.
"""Shrink a tiny-synth config further, for runs of a few seconds in tests.

The result follows whatever the config in configs/ says (model type, heads,
pipelines); only sizes, data, loaders and the schedule are replaced.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def write_tiny_config(src: str,
                      dst: str,
                      data_root: str,
                      image_size: int = 56,
                      max_iters: int = 3,
                      optimizer: Optional[dict] = None,
                      deterministic_data: bool = False) -> str:
    """Write ``src`` (a path relative to the repo) shrunk to ``dst``.

    Args:
        src (str): e.g. ``'configs/self1e/self1e_tiny_synth.py'``.
        dst (str): The ``.py`` file to write.
        data_root (str): A synthetic REFER root.
        image_size (int): Tile size; 56 px gives 2x2 = 4 image tokens.
        max_iters (int): Training iterations.
        optimizer (dict, optional): Replaces the config's optimizer; the
            wrapper becomes a float32 ``OptimWrapper``.
        deterministic_data (bool): Training samples that do not depend on
            the process: fixed prompt templates (drawn from each process's
            RNG otherwise) and every expression its own sample (the
            expression draw of training samples is seeded by rank).

    Returns:
        str: ``dst``.
    """
    cfg = Config.fromfile(osp.join(REPO, src))
    patch = 14
    num_tokens = int((image_size // patch) * 0.5)**2
    bb = cfg.model.backbone.config
    bb.vision_config.update(hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=1, intermediate_size=64,
                            image_size=image_size)
    bb.text_config.update(hidden_size=64, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1,
                          intermediate_size=128)
    bb.image_seq_length = num_tokens
    for key, dims in (('neck', 32), ('decode_head', 32),
                      ('auxiliary_head', 32)):
        part = cfg.model.get(key)
        if part is None:
            continue
        for name in ('embed_dims', 'ffn_channels'):
            if name in part:
                part[name] = dims
        if 'num_heads' in part:
            part['num_heads'] = 2
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.update(num_workers=0, persistent_workers=False)
        dl.sampler.shuffle = False
        dl.dataset.data_root = data_root
        for t in dl.dataset.pipeline:
            if t['type'] == 'InternVLImageTransform':
                t['image_size'] = image_size
    if deterministic_data:
        cfg.train_dataloader.dataset.test_mode = True
        processor = cfg.model.backbone.setdefault('processor', {})
        processor['random_templates'] = False
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=10**6)
    cfg.param_scheduler = []
    if optimizer is not None:
        cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.visualization = dict(type='RefSegVisualizationHook',
                                           draw=False)
    cfg.dump(dst)
    return dst
