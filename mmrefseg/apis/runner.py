# Copyright (c) mmrefseg contributors.
"""Runner construction shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def resolve_work_dir(cfg: Config, config_path: str,
                     work_dir: Optional[str] = None) -> None:
    """Set ``cfg.work_dir``: command line > config > work_dirs/<config>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


CHECKPOINT_MATCH_HOOK = 'mmrefseg.CheckpointMatchHook'


def _is_checkpoint_match_hook(hook) -> bool:
    hook_type = hook.get('type') if isinstance(hook, dict) else type(hook)
    name = hook_type if isinstance(hook_type, str) else getattr(
        hook_type, '__name__', '')
    return name.split('.')[-1] == 'CheckpointMatchHook'


def add_checkpoint_match_hook(cfg: Config) -> Config:
    """Guard ``load_from``/``resume`` with :class:`CheckpointMatchHook`.

    Added as ``default_hooks.checkpoint_match`` unless the config already
    has one (``configs/_base_/default_runtime.py`` does). Setting
    ``default_hooks.checkpoint_match=None`` removes it (MMEngine itself
    would refuse a None entry it does not know); the documented way to load
    a mismatched checkpoint is ``load_from_partial=True``.

    Args:
        cfg (Config): The config, modified in place.

    Returns:
        Config: The same config.
    """
    hooks = dict(cfg.get('default_hooks') or {})
    if 'checkpoint_match' in hooks and hooks['checkpoint_match'] is None:
        hooks.pop('checkpoint_match')
        cfg.default_hooks = hooks
        return cfg
    listed = list(hooks.values()) + list(cfg.get('custom_hooks') or [])
    if not any(_is_checkpoint_match_hook(h) for h in listed if h):
        hooks['checkpoint_match'] = dict(type=CHECKPOINT_MATCH_HOOK)
        cfg.default_hooks = hooks
    return cfg


def build_runner(cfg: Config):
    """Build the runner named by ``runner_type``, or a default Runner.

    ``runner_type='FlexibleRunner'`` (with a DeepSpeed or FSDP ``strategy``)
    goes through the registry like any other registered runner.

    Args:
        cfg (Config): The full config.

    Returns:
        The runner (``Runner``, ``FlexibleRunner`` or a registered one).
    """
    add_checkpoint_match_hook(cfg)  # mismatched checkpoints fail to load
    if 'runner_type' in cfg:
        from mmrefseg.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)
