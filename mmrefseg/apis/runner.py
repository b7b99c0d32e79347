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


def build_runner(cfg: Config):
    """Build the runner named by ``runner_type``, or a default Runner.

    ``runner_type='FlexibleRunner'`` (with a DeepSpeed or FSDP ``strategy``)
    goes through the registry like any other registered runner.

    Args:
        cfg (Config): The full config.

    Returns:
        The runner (``Runner``, ``FlexibleRunner`` or a registered one).
    """
    if 'runner_type' in cfg:
        from mmrefseg.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)
