# Copyright (c) mmrefseg contributors.
"""A fine-tuned RefSegmentor as one folder, and loading it back.

The folder written by :func:`.refsegmentor_export.export_refsegmentor`
holds

* the native transformers InternVL (``config.json``, ``model*.safetensors``,
  ``generation_config.json``) with every LoRA merged into its base weights
  and the trained rows of the added tokens in place;
* the tokenizer (``tokenizer.json`` and friends, added tokens included);
* ``mmrefseg_heads.safetensors``: every RefSegmentor weight outside the
  backbone (neck, decode head, auxiliary head);
* ``mmrefseg_config.py``: the training config, rewritten so that the
  backbone and every tokenizer entry read this folder;
* ``mmrefseg_export.json``: what was exported from where.

:func:`load_exported_model` builds the whole RefSegmentor from it. The
config stores the folder's absolute path at export time; a moved or
shared folder is re-pointed to wherever it is loaded from.
"""
import json
import os.path as osp
from typing import Any, Dict, Optional, Union

import torch

HEADS_FILE = 'mmrefseg_heads.safetensors'
CONFIG_FILE = 'mmrefseg_config.py'
INFO_FILE = 'mmrefseg_export.json'
BACKBONE_PREFIX = 'backbone.'
# Backbone settings that only make sense for the weights before export.
DROPPED_BACKBONE_KEYS = ('config', 'vit_pos_embed_init', 'llm_lora',
                         'vit_lora')


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint or weights file without executing code from it.

    The one place this package's export/load path reads such files, so the
    safe loader behind it can be swapped in one line.

    Args:
        path: ``.pth``/``.bin`` (MMEngine or plain state dict) or
            ``.safetensors``.

    Returns:
        dict: whatever the file holds (a state dict or an MMEngine
        checkpoint dict).
    """
    from mmrefseg.utils.checkpoint_loading import load_checkpoint_file
    return load_checkpoint_file(path, map_location='cpu')


def state_dict_of(checkpoint: Dict[str, Any],
                  path: str) -> Dict[str, torch.Tensor]:
    """The model state dict inside an MMEngine checkpoint (or the dict).

    Args:
        checkpoint: what :func:`read_checkpoint` returned.
        path: its file, for messages.

    Returns:
        dict[str, Tensor]: keys without a DDP ``module.`` prefix.
    """
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} holds no state dict (expected an MMEngine '
                         "checkpoint with 'state_dict', or str -> Tensor).")
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def replace_values(node: Any, key: str, old: Any, new: Any) -> Any:
    """Replace every ``key: old`` entry of a nested config by ``key: new``.

    Args:
        node: a config (dicts, lists, tuples, scalars).
        key: the entry name, e.g. ``'tokenizer'``.
        old: the value to replace (compared with ``==``).
        new: its replacement.

    Returns:
        The config with the entries replaced (dicts are rebuilt).
    """
    if isinstance(node, dict):
        return {k: (new if k == key and _plain(v) == old else
                    replace_values(v, key, old, new))
                for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(replace_values(v, key, old, new) for v in node)
    return node


def _plain(value: Any) -> Any:
    """Config dicts as plain dicts, so that they compare by value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def repoint_config(cfg_dict: dict, old: Any, directory: str) -> dict:
    """Point the backbone and every tokenizer entry equal to ``old`` at
    ``directory``.

    Args:
        cfg_dict: the whole config as a plain dict.
        old: the tokenizer entry (or folder path) to replace.
        directory: the exported folder.

    Returns:
        dict: the rewritten config.
    """
    cfg_dict = replace_values(cfg_dict, 'tokenizer', _plain(old), directory)
    backbone = dict(cfg_dict['model']['backbone'])
    backbone['pretrained'] = directory
    backbone['tokenizer'] = directory
    cfg_dict['model'] = dict(cfg_dict['model'], backbone=backbone)
    return cfg_dict


def load_exported_model(directory: str,
                        device: Union[str, torch.device] = 'cpu',
                        cfg_options: Optional[dict] = None):
    """Build the RefSegmentor of an exported folder, with its weights.

    Args:
        directory: a folder written by ``tools/model_converters/
            refsegmentor_to_hf.py``.
        device: where to put the model.
        cfg_options: overrides merged into the config before building
            (MMEngine ``merge_from_dict`` keys, e.g.
            ``{'model.test_cfg.threshold': 0.4}``).

    Returns:
        RefSegmentor: in eval mode, with ``cfg`` (the MMEngine Config it was
        built from) attached.

    Raises:
        FileNotFoundError: a file of the folder is missing.
        KeyError: the heads file and the config disagree on the weights.
    """
    from mmengine.config import Config

    from mmrefseg.registry import MODELS
    from mmrefseg.utils import register_all_modules
    directory = osp.abspath(directory)
    for name in (CONFIG_FILE, HEADS_FILE, INFO_FILE, 'config.json'):
        if not osp.isfile(osp.join(directory, name)):
            raise FileNotFoundError(
                f'{directory} is not an exported RefSegmentor folder: '
                f'{name} is missing (write one with tools/model_converters/'
                'refsegmentor_to_hf.py).')
    register_all_modules(init_default_scope=False)
    with open(osp.join(directory, INFO_FILE)) as f:
        info = json.load(f)
    cfg = Config.fromfile(osp.join(directory, CONFIG_FILE))
    cfg_dict = repoint_config(cfg.to_dict(), info['directory'], directory)
    cfg = Config(cfg_dict)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    heads_path = osp.join(directory, HEADS_FILE)
    heads = state_dict_of(read_checkpoint(heads_path), heads_path)
    load_heads(model, heads, heads_path)
    model.cfg = cfg
    return model.to(device).eval()


def load_heads(model: torch.nn.Module, heads: Dict[str, torch.Tensor],
               path: str) -> None:
    """Load every non-backbone weight of ``model`` from ``heads``, strictly.

    Args:
        model: a RefSegmentor whose backbone is already loaded.
        heads: ``neck.*``/``decode_head.*``/``auxiliary_head.*`` tensors.
        path: their file, for messages.

    Raises:
        KeyError: keys missing on either side, naming them and the file.
    """
    own = {k for k in model.state_dict() if not k.startswith(BACKBONE_PREFIX)}
    missing = sorted(own - set(heads))
    unexpected = sorted(set(heads) - own)
    if missing or unexpected:
        raise KeyError(
            f'{path} does not match the config beside it: missing '
            f'{missing[:10]}, unexpected {unexpected[:10]}.')
    model.load_state_dict(heads, strict=False)
