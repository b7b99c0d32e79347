# Copyright (c) mmrefseg contributors.
"""Start-up checks that turn silent config mistakes into errors.

MMEngine reads many settings with ``cfg.get(key, default)``, so a key that
nobody reads is ignored: ``--cfg-options lod_level=DEBUG`` trains as if it
were not there, and ``CheckpointHook`` forwards unknown arguments to
``Runner.save_checkpoint`` only when it first saves (after ``interval``
iterations). These checks run before anything is trained or evaluated.
"""
import difflib
import inspect
import os.path as osp
from typing import Iterable, List, Optional

from mmengine.config import Config

# Top-level keys read by tools/train.py, tools/test.py, Runner.from_cfg,
# FlexibleRunner.from_cfg and Runner.wrap_model/setup_env (cfg.get(...)).
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
    'runner_type', 'strategy', 'custom_imports', 'amp_dtype', 'cfg',
    'vis_backends',
    # CheckpointMatchHook: partial loading is an explicit opt-in.
    'load_from_partial',
})


def _suggest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1)
    return f'; did you mean {close[0]!r}?' if close else ''


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Reject ``--cfg-options`` keys that nothing would read.

    A key is accepted when it already exists in the config, or when it adds
    a new top-level key that the runner reads (:data:`RUNNER_KEYS`). Keys
    inside a component (``model.test_cfg.threshold``, a hook's argument) are
    checked by the component when it is built or by
    :func:`check_hook_arguments`; this catches the top level, which no
    component owns.

    Args:
        cfg (Config): The config as loaded, before the options are merged.
        options (dict, optional): ``--cfg-options`` as parsed by DictAction.

    Raises:
        KeyError: A new top-level key that no runner reads, naming the key
            and the closest existing one.
    """
    for full_key in options or {}:
        top = full_key.split('.', 1)[0]
        if top in cfg or top in RUNNER_KEYS:
            continue
        raise KeyError(
            f'--cfg-options {full_key}: the config has no top-level key '
            f'{top!r} and the runner does not read one'
            f'{_suggest(top, list(cfg.keys()) + sorted(RUNNER_KEYS))}')


def check_hook_arguments(runner) -> None:
    """Check arguments that hooks only use later, at start-up.

    ``CheckpointHook`` keeps unknown keyword arguments and passes them to
    ``runner.save_checkpoint`` at its first save; a misspelt one (e.g.
    ``save_optimiser``) would fail only then.

    Args:
        runner: A built MMEngine ``Runner`` or ``FlexibleRunner``.

    Raises:
        TypeError: A ``CheckpointHook`` argument that ``save_checkpoint``
            does not take.
    """
    from mmengine.hooks import CheckpointHook
    params = inspect.signature(runner.save_checkpoint).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = set(params)
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook):
            continue
        unknown: List[str] = sorted(set(hook.args) - accepted)
        if unknown:
            raise TypeError(
                f'CheckpointHook got unknown argument(s) {unknown}; it '
                'passes extra arguments to Runner.save_checkpoint, which '
                f'takes {sorted(accepted - {"filename", "out_dir"})}'
                f'{_suggest(unknown[0], accepted)}')


def check_checkpoint_exists(path: Optional[str], what: str) -> None:
    """Fail early when a local checkpoint file is missing.

    Args:
        path (str, optional): A file path or URL (``scheme://``, not
            checked).
        what (str): What the path is, for the message (e.g. ``'checkpoint'``).

    Raises:
        FileNotFoundError: ``path`` is a local path that does not exist.
    """
    if path is None or '://' in str(path):
        return
    if not osp.isfile(path):
        hint = ' (it is a directory)' if osp.isdir(path) else ''
        raise FileNotFoundError(f'{what} not found: {path}{hint}')
