# Copyright (c) mmrefseg contributors.
"""InternVL chat checkpoints (``InternVLChatModel``) -> native transformers.

The original layout is InternViT (``vision_model.*``), the projector
``mlp1.*`` and an LLM under ``language_model.*``: InternLM2 (packed
``wqkv``, ``tok_embeddings``/``output``), Qwen2, Qwen3 or Llama. The native
layout is ``InternVLForConditionalGeneration``; InternLM2 has no native
class and becomes Llama, whose computation is the same once ``wqkv`` is
unpacked.

Mapping tables: :mod:`.internvl_rules`; config: :mod:`.internvl_config`.
"""
import json
import os.path as osp
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from .internvl_config import build_hf_config, llm_family, read_chat_config
from .internvl_rules import LLM, chat_rules
from .key_mapping import MappingPlan, check_shapes, plan_mapping
from .tokenizer_files import (
    IMG_CONTEXT,
    chat_token_summary,
    convert_tokenizer,
    source_token_ids,
)
from .weights_io import ShardedSafetensorsWriter, WeightSource

Log = Callable[[str], None]


def expected_shapes(hf_config) -> Dict[str, Tuple[int, ...]]:
    """State-dict keys and shapes of the native model (built on meta)."""
    from transformers import InternVLForConditionalGeneration
    with torch.device('meta'):
        model = InternVLForConditionalGeneration(hf_config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if hf_config.tie_word_embeddings:
        shapes.pop('lm_head.weight', None)
    return shapes


def _planned_shapes(plan: MappingPlan,
                    shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, tuple]:
    """Target shapes, by running the transforms on meta tensors."""
    out = {}
    for key in plan.targets:
        fake = torch.empty(shapes[key], device='meta')
        for name, tensor in plan.apply(key, fake).items():
            out[name] = tuple(tensor.shape)
    return out


# ------------------------------------------------------------------- main
def _tied_lm_head_equal(source: WeightSource,
                        shapes: Dict[str, tuple]) -> Optional[bool]:
    """Whether a tied model's stored lm_head equals its embeddings."""
    names = [k for k in ('language_model.lm_head.weight',
                         'language_model.output.weight') if k in shapes]
    emb_names = [k for k in ('language_model.model.embed_tokens.weight',
                             'language_model.model.tok_embeddings.weight')
                 if k in shapes]
    if not names or not emb_names:
        return None
    wanted = {names[0], emb_names[0]}
    found = {}
    for _, tensors in source.iter_shards():
        for key, tensor in tensors:
            if key in wanted:
                found[key] = tensor
        if len(found) == 2:
            break
    return torch.equal(found[names[0]], found[emb_names[0]])


def convert_internvl_chat(src: str,
                          dst: str,
                          dtype: Optional[torch.dtype] = None,
                          max_shard_bytes: int = 2 << 30,
                          divert: Optional[Callable[[str], bool]] = None,
                          tokenizer_src: Optional[str] = None,
                          extra_tokens: Sequence[str] = (),
                          log: Log = print) -> dict:
    """Convert an InternVL chat checkpoint directory to the native layout.

    Args:
        src: directory with ``config.json`` and the weights (sharded
            safetensors or ``.bin``) of an ``InternVLChatModel``.
        dst: output directory for ``InternVLForConditionalGeneration``.
        dtype: cast floating tensors (default: keep the stored dtype).
        max_shard_bytes: output shard size.
        divert: predicate for source keys that are not part of InternVL
            (e.g. a mask decoder); those tensors are returned instead of
            written, and excluded from the coverage check.
        tokenizer_src: directory with the tokenizer (default ``src``).
        extra_tokens: tokens to register if the tokenizer lacks them.
        log: progress callback.

    Returns:
        dict: ``hf_config``, ``token_ids`` (chat tokens), ``diverted``
        ({key: tensor}), ``family``, ``dropped`` ({key: reason}).

    Raises:
        KeyCoverageError: a source key has no rule, a target key is not
            filled, or shapes disagree; nothing is written in that case.
    """
    start = time.perf_counter()
    chat_cfg = read_chat_config(src)
    family = llm_family(chat_cfg)
    log(f'Source: {src} ({chat_cfg.get("architectures")}, LLM {family})')
    image_token_id = source_token_ids(tokenizer_src or src).get(IMG_CONTEXT)
    if image_token_id is None:
        raise ValueError(f'The tokenizer files of {tokenizer_src or src} '
                         f'have no {IMG_CONTEXT} token.')
    hf_config = build_hf_config(chat_cfg, image_token_id)

    source = WeightSource(src)
    all_shapes = source.keys_and_shapes()
    divert = divert or (lambda key: False)
    shapes = {k: v for k, v in all_shapes.items() if not divert(k)}
    drop_tied = False
    if hf_config.tie_word_embeddings:
        equal = _tied_lm_head_equal(source, shapes)
        if equal is False:
            log('lm_head differs from the tied embeddings: untying.')
            hf_config.tie_word_embeddings = False
            hf_config.text_config.tie_word_embeddings = False
        drop_tied = bool(equal)
    expected = expected_shapes(hf_config)
    plan = plan_mapping(shapes, chat_rules(hf_config, family, drop_tied),
                        expected_targets=expected,
                        what=f'{family} InternVL chat checkpoint')
    check_shapes(_planned_shapes(plan, shapes), expected)

    tokenizer, token_ids = convert_tokenizer(tokenizer_src or src, dst,
                                             extra_tokens, log)
    log('Chat tokens: ' + ', '.join(chat_token_summary(token_ids)))
    rows = expected[f'{LLM}.embed_tokens.weight'][0]
    if len(tokenizer) > rows:
        raise ValueError(f'The tokenizer has {len(tokenizer)} tokens but '
                         f'the embeddings only {rows} rows.')

    writer = ShardedSafetensorsWriter(dst, max_shard_bytes, log)
    diverted: Dict[str, torch.Tensor] = {}
    stored_dtype = dtype
    for i, (path, tensors) in enumerate(source.iter_shards()):
        log(f'[{i + 1}/{len(source.files)}] {osp.basename(path)}')
        for key, tensor in tensors:
            if divert(key):
                diverted[key] = tensor.clone()
                continue
            for name, out in plan.apply(key, tensor).items():
                if out.is_floating_point():
                    out = out.to(dtype) if dtype is not None else out
                    stored_dtype = stored_dtype or out.dtype
                writer.add(name, out)
    files = writer.close()
    hf_config.dtype = stored_dtype
    hf_config.architectures = ['InternVLForConditionalGeneration']
    hf_config.save_pretrained(dst)
    _write_conversion_info(dst, src, chat_cfg, family, token_ids, plan)
    log(f'Wrote {len(files)} shard(s), {writer.total_bytes / 2**30:.2f} GiB '
        f'to {dst} in {time.perf_counter() - start:.1f}s')
    return dict(hf_config=hf_config, token_ids=token_ids, diverted=diverted,
                family=family, dropped=plan.dropped)


def _write_conversion_info(dst, src, chat_cfg, family, token_ids,
                           plan) -> None:
    """Record what the native config cannot hold (preprocessing, source)."""
    info = dict(
        source=osp.abspath(src),
        source_architectures=chat_cfg.get('architectures'),
        llm_family=family,
        template=chat_cfg.get('template'),
        image_preprocessing={
            k: chat_cfg.get(k)
            for k in ('force_image_size', 'dynamic_image_size',
                      'use_thumbnail', 'min_dynamic_patch',
                      'max_dynamic_patch', 'downsample_ratio',
                      'ps_version', 'select_layer')
        },
        token_ids=token_ids,
        dropped_keys=plan.dropped)
    with open(osp.join(dst, 'mmrefseg_conversion.json'), 'w') as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
