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
    from mmrefseg.models.backbones.quantization import check_quantized_strategy
    check_quantized_strategy(cfg)  # 4/8-bit weights cannot be FSDP-sharded
    add_checkpoint_match_hook(cfg)  # mismatched checkpoints fail to load
    # A torchrun launch on a machine without CUDA: gloo, no device_ids.
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        from mmrefseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    # Hook arguments used only later (CheckpointHook's) fail now.
    from .config_checks import check_hook_arguments
    check_hook_arguments(runner)
    return runner


# ---------------------------------------------------------------------------
# Distributed runs on machines without CUDA (gloo).
# ---------------------------------------------------------------------------
def prepare_cpu_distributed(cfg: Config) -> bool:
    """Make a ``--launcher pytorch`` run work on a machine without CUDA.

    MMEngine 0.10's ``init_dist`` calls ``torch.cuda.set_device`` before it
    creates the process group, and its runner gives DDP
    ``device_ids=[LOCAL_RANK]``; both fail without a CUDA device ("Found no
    NVIDIA driver", then DDP on a CPU module). Here, when CUDA is absent:

    * ``env_cfg.dist_cfg.backend`` ``'nccl'`` (our default) becomes
      ``'gloo'`` (NCCL needs GPUs); another backend is kept;
    * the process group is created here from torchrun's environment
      (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so
      MMEngine finds it initialised and skips its own ``init_dist``;
    * ``model_wrapper_cfg`` (a DDP subclass) gets ``device_ids=None``, which
      is how DDP is told that the module lives on the CPU. A
      ``FlexibleRunner`` DDP strategy's ``model_wrapper`` gets the same;
      FSDP and DeepSpeed strategies are refused with the reason.

    Nothing changes with CUDA present, with ``launcher='none'``, or when a
    process group already exists.

    Args:
        cfg (Config): The full config, modified in place.

    Returns:
        bool: Whether the config was adapted (a CPU distributed run).

    Raises:
        RuntimeError: For a ``slurm``/``mpi`` launcher without CUDA (MMEngine
            sets the CUDA device for those too; use ``torchrun``, i.e.
            ``tools/dist_train.sh``), and for FSDP/DeepSpeed strategies.
    """
    import datetime

    import torch
    import torch.distributed as torch_dist
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} without a CUDA device is not supported '
            '(MMEngine selects a CUDA device for it); launch CPU processes '
            'with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCESSES')
    strategy = cfg.get('strategy') or {}
    flexible = cfg.get('runner_type') == 'FlexibleRunner'
    if flexible and strategy.get('type') in ('FSDPStrategy',
                                             'DeepSpeedStrategy'):
        # torch 2.13's FSDP raises "FSDP needs a non-CPU accelerator
        # device"; MMEngine's DeepSpeedStrategy always calls init_dist,
        # which calls torch.cuda.set_device.
        raise RuntimeError(
            f"{strategy['type']} needs GPUs (torch's FSDP refuses CPU "
            "modules; MMEngine's DeepSpeedStrategy sets a CUDA device). On "
            'CPU use the DDP path: the same recipe without runner_type/'
            'strategy (docs/scaling.md).')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        if kwargs.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        torch_dist.init_process_group(backend=dist_cfg['backend'], **kwargs)
    if flexible and strategy:
        wrapper = strategy.get('model_wrapper')
        if wrapper is None and strategy.get('type') in (
                None, 'DDPStrategy'):
            strategy['model_wrapper'] = dict(
                type='MMDistributedDataParallel', device_ids=None)
        elif wrapper is not None:
            wrapper.setdefault('device_ids', None)
        return True
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper_type = MODEL_WRAPPERS.get(
            wrapper.get('type', 'MMDistributedDataParallel'))
        if isinstance(wrapper_type, type) and issubclass(
                wrapper_type, DistributedDataParallel):
            wrapper.setdefault('device_ids', None)
    return True


def use_tolerant_eval_loops(cfg: Config) -> Config:
    """Swap MMEngine's ``ValLoop``/``TestLoop`` for the tolerant ones.

    :class:`~mmrefseg.engine.loops.TolerantValLoop` and ``TolerantTestLoop``
    skip (and report) batches whose images cannot be read instead of ending
    the run without a metric. Custom loop types are left alone.

    Args:
        cfg (Config): The config, modified in place.

    Returns:
        Config: The same config.
    """
    for key, plain, tolerant in (('val_cfg', 'ValLoop', 'TolerantValLoop'),
                                 ('test_cfg', 'TestLoop',
                                  'TolerantTestLoop')):
        loop = cfg.get(key)
        if loop is not None and loop.get('type', plain) in (
                plain, f'mmengine.{plain}'):
            # Scoped: configs of plain MMSeg models (default_scope='mmseg',
            # projects/mmseg_text_decoder) resolve it too.
            loop['type'] = f'mmrefseg.{tolerant}'
    return cfg


def finish_distributed() -> None:
    """Tear the process group down before the process exits.

    A gloo process group left alive at interpreter exit can abort a rank
    with "terminate called without an active exception" after its work is
    done (seen about once in five 2-process CPU tests), which torchrun then
    reports as a failed run.
    """
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
