# Copyright (c) mmrefseg contributors.
"""Shared flow of the released-model converters (MLLMSeg, SELF1E).

A released checkpoint is an InternVL chat checkpoint plus the method's own
modules. :func:`convert_release` writes

* ``<out>/hf/``: the native InternVL backbone (with the checkpoint's
  tokenizer, ``[SEG]`` rows and all), see :mod:`.internvl_chat`;
* ``<out>/mmrefseg.pth``: an MMEngine checkpoint
  ``{'state_dict': {neck.*, decode_head.*}, 'meta': {...}}`` for
  ``RefSegmentor``; the backbone weights come from ``hf/``, and
  ``meta['state_dict_covers']`` names the modules the file holds (see
  :class:`mmrefseg.engine.CheckpointMatchHook`);
* ``<out>/cfg_options.txt``: the ``--cfg-options`` that keep the released
  behaviour (also printed and stored in ``meta``).

The method's keys are mapped and checked (names and shapes) before the
backbone is converted, so a bad checkpoint fails in seconds.
"""
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .internvl_chat import convert_internvl_chat, read_chat_config
from .key_mapping import MappingPlan, Rule, check_shapes, plan_mapping
from .weights_io import WeightSource

Shapes = Dict[str, Tuple[int, ...]]


@dataclass
class ReleaseSpec:
    """What differs between released methods.

    Args:
        name: method name for messages and ``meta``.
        prefixes: source key prefixes that belong to the method's modules.
        rules: renaming rules for those keys.
        build_targets: ``(method_shapes, chat_cfg) -> (expected target
            shapes, {option: value} describing the target modules)``.
        backbone_options: backbone settings that keep released behaviour.
        token_names: tokens whose ids go into ``meta`` (and must exist).
        extra_tokens: tokens to register when the tokenizer lacks them.
        notes: lines for ``meta`` and the printed summary.
    """

    name: str
    prefixes: Tuple[str, ...]
    rules: List[Rule]
    build_targets: Callable[[Shapes, dict], Tuple[Shapes, dict]]
    backbone_options: Dict[str, object]
    token_names: Sequence[str]
    extra_tokens: Sequence[str] = ()
    notes: List[str] = field(default_factory=list)


def cfg_options(options: Dict[str, object]) -> str:
    """``key=value`` pairs as accepted by MMEngine's ``--cfg-options``.

    Only scalars: ``DictAction`` cannot express strings with brackets
    (``'[SEG]'``) inside lists (and it drops spaces from values, so paths
    should have none).
    """
    parts = []
    for key, value in options.items():
        if isinstance(value, (list, tuple, dict)):
            raise TypeError(f'{key}: only scalar overrides are printable')
        parts.append(f'{key}={value}')
    return ' '.join(parts)


def convert_release(spec: ReleaseSpec,
                    src: str,
                    out_dir: str,
                    tokenizer_src: Optional[str] = None,
                    dtype: Optional[torch.dtype] = None,
                    max_shard_bytes: int = 2 << 30,
                    log: Callable[[str], None] = print) -> dict:
    """Convert a released checkpoint directory (see module docstring).

    Args:
        spec: the method (:func:`.mllmseg.mllmseg_spec`,
            :func:`.self1e.self1e_spec`).
        src: the released directory (config.json, weights, tokenizer).
        out_dir: output directory (``hf/``, ``mmrefseg.pth``,
            ``cfg_options.txt``).
        tokenizer_src: tokenizer directory when ``src`` has none.
        dtype: cast floating weights (default: keep).
        max_shard_bytes: backbone output shard size.
        log: progress callback.

    Returns:
        dict: ``checkpoint`` (path), ``hf_dir``, ``meta``, ``cfg_options``.
    """
    chat_cfg = read_chat_config(src)
    source = WeightSource(src)
    is_method_key = lambda key: key.startswith(spec.prefixes)  # noqa: E731
    method_shapes = {k: v for k, v in source.keys_and_shapes().items()
                     if is_method_key(k)}
    if not method_shapes:
        raise KeyError(f'{src} has no {spec.name} keys (expected keys '
                       f'starting with {spec.prefixes}); is it the base '
                       'model? Use internvl_chat_to_hf.py for that.')
    plan, module_options = plan_method_keys(spec, method_shapes, chat_cfg)
    log(f'{spec.name}: {len(method_shapes)} keys checked against '
        'RefSegmentor')

    hf_dir = osp.join(out_dir, 'hf')
    result = convert_internvl_chat(
        src, hf_dir, dtype=dtype, max_shard_bytes=max_shard_bytes,
        divert=is_method_key, tokenizer_src=tokenizer_src,
        extra_tokens=spec.extra_tokens, log=log)
    token_ids = result['token_ids']
    missing = [t for t in spec.token_names if t not in token_ids]
    if missing:
        raise KeyError(f'The tokenizer has no {missing}.')
    rows = result['hf_config'].text_config.vocab_size
    for tok in spec.token_names:
        if token_ids[tok] >= rows:
            raise ValueError(f'{tok} has id {token_ids[tok]} but the '
                             f'checkpoint has only {rows} embedding rows: '
                             'wrong tokenizer?')
    # Tokens the training script appended (resizing the embeddings to the
    # tokenizer) must sit on the last rows, or the base tokenizer is wrong.
    tail = list(range(rows - len(spec.extra_tokens), rows))
    got = [token_ids[t] for t in spec.extra_tokens]
    if got != tail:
        raise ValueError(
            f'{list(spec.extra_tokens)} got ids {got}, but the checkpoint '
            f'trained them as rows {tail}: the tokenizer is not the base '
            'model the checkpoint was trained from.')

    state_dict = OrderedDict()
    for key in sorted(result['diverted']):
        for name, tensor in plan.apply(key, result['diverted'][key]).items():
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state_dict[name] = tensor.contiguous()
    options = {f'model.backbone.{k}': v
               for k, v in spec.backbone_options.items()}
    options['model.backbone.pretrained'] = osp.abspath(hf_dir)
    options['model.backbone.tokenizer'] = osp.abspath(hf_dir)
    options.update(module_options)
    ckpt_path = osp.join(out_dir, 'mmrefseg.pth')
    meta = dict(
        converter=f'{spec.name} -> mmrefseg RefSegmentor',
        source=osp.abspath(src),
        hf_backbone=osp.abspath(hf_dir),
        checkpoint=osp.abspath(ckpt_path),
        token_ids={t: token_ids[t] for t in spec.token_names},
        vocab_size=rows,
        cfg_options=options,
        # Only these modules are in the file; the backbone loads from hf/.
        # CheckpointMatchHook checks everything under them strictly.
        state_dict_covers=sorted({k.split('.')[0] + '.' for k in state_dict}),
        dropped_keys=dict(result['dropped']),
        notes=list(spec.notes))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), ckpt_path)
    # Whatever the user's torch.load settings, this file must be plain data.
    torch.load(ckpt_path, map_location='cpu', weights_only=True)
    text = cfg_options(options)
    with open(osp.join(out_dir, 'cfg_options.txt'), 'w') as f:
        f.write(text + '\n')
    log(f'Wrote {ckpt_path} ({len(state_dict)} tensors: neck/decode_head)')
    log('Token ids: ' + ', '.join(f'{t}={token_ids[t]}'
                                  for t in spec.token_names))
    for note in spec.notes:
        log(f'Note: {note}')
    log('Config overrides (also in cfg_options.txt):\n  --cfg-options ' +
        text)
    return dict(checkpoint=ckpt_path, hf_dir=hf_dir, meta=meta,
                cfg_options=text)


def plan_method_keys(spec: ReleaseSpec, shapes: Shapes,
                     chat_cfg: dict) -> Tuple[MappingPlan, dict]:
    """Map the method's keys strictly (names and shapes), reading nothing.

    Returns:
        tuple: (the mapping plan, config options of the target modules).

    Raises:
        KeyCoverageError: naming unused source keys, unfilled target keys
            or mismatched shapes.
    """
    expected, module_options = spec.build_targets(shapes, chat_cfg)
    plan = plan_mapping(shapes, spec.rules, expected_targets=expected,
                        what=f'{spec.name} checkpoint')
    planned = {}
    for key in plan.targets:
        fake = torch.empty(shapes[key], device='meta')
        planned.update({n: tuple(t.shape)
                        for n, t in plan.apply(key, fake).items()})
    check_shapes(planned, expected, f'{spec.name} checkpoint')
    return plan, module_options


def map_method_state(spec: ReleaseSpec, state: Dict[str, torch.Tensor],
                     chat_cfg: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The RefSegmentor state dict of a method's released tensors.

    Args:
        spec: the method.
        state: the method's tensors with their released names.
        chat_cfg: the checkpoint's InternVL chat config (for widths).

    Returns:
        OrderedDict: ``neck.*`` / ``decode_head.*`` tensors.
    """
    plan, _ = plan_method_keys(
        spec, {k: tuple(v.shape) for k, v in state.items()}, chat_cfg)
    out = OrderedDict()
    for key in sorted(state):
        for name, tensor in plan.apply(key, state[key]).items():
            out[name] = tensor.contiguous()
    return out


def meta_module_shapes(module: torch.nn.Module, prefix: str) -> Shapes:
    """State-dict shapes of a module built on the meta device."""
    return {f'{prefix}.{k}': tuple(v.shape)
            for k, v in module.state_dict().items()}
