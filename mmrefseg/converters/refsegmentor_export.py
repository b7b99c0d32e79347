# Copyright (c) mmrefseg contributors.
"""A trained RefSegmentor checkpoint -> native InternVL folder + heads.

Inside a RefSegmentor the InternVL differs from a native checkpoint in two
ways, both undone here so that ``InternVLForConditionalGeneration.
from_pretrained`` computes exactly the same logits:

* LoRA adapters (peft ``inject_adapter_in_model`` on the LLM and/or ViT)
  are merged into their base linear layers (peft's own ``merge``, i.e.
  ``W + scaling * B @ A``) and the base layers put back in their place;
* with a frozen LLM the embedding and lm_head rows of the added tokens
  (``[SEG]``, ``[REJ]``) live in ``NewTokenEmbedding``/``NewTokenLMHead``;
  their trained rows are written back into plain ``nn.Embedding``/
  ``nn.Linear`` weights. Tied embeddings whose input rows were trained
  alone are untied (the output rows kept), as the model computed.

The folder layout and the loader are in :mod:`.exported_model`.
"""
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, Optional, Union

import torch
import torch.nn as nn

from .exported_model import (
    BACKBONE_PREFIX,
    CONFIG_FILE,
    DROPPED_BACKBONE_KEYS,
    HEADS_FILE,
    INFO_FILE,
    read_checkpoint,
    repoint_config,
    state_dict_of,
)
from .internvl_chat import expected_shapes
from .key_mapping import KeyCoverageError
from .weights_io import ShardedSafetensorsWriter

Log = Callable[[str], None]


def merge_lora_layers(model: nn.Module) -> int:
    """Merge every peft LoRA layer of ``model`` and restore its base layer.

    Args:
        model: a module into which ``inject_adapter_in_model`` put LoRA.

    Returns:
        int: the number of merged layers.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    from mmrefseg.models.backbones.quantization import quantized_linear_names
    if quantized_linear_names(model):
        # peft would dequantize, add the update and quantize again: a
        # lossy 4/8-bit export that no native loader reads as bf16.
        raise ValueError(
            'Cannot export a model with 4/8-bit weights (a *_qlora config): '
            'merging LoRA into them would re-quantize. Not supported yet.')
    names = [name for name, module in model.named_modules()
             if isinstance(module, BaseTunerLayer)]
    for name in names:
        layer = model.get_submodule(name)
        # safe_merge checks the merged weights for NaN/inf.
        layer.merge(safe_merge=True)
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return len(names)


def unwrap_new_token_rows(hf_model: nn.Module) -> bool:
    """Write trained added-token rows back into plain embedding layers.

    Args:
        hf_model: ``InternVLForConditionalGeneration`` possibly holding
            ``NewTokenEmbedding``/``NewTokenLMHead``.

    Returns:
        bool: whether tied input/output embeddings had to be untied.
    """
    from mmrefseg.models.utils.new_token_rows import (
        NewTokenEmbedding,
        NewTokenLMHead,
    )
    untied = False
    emb = hf_model.get_input_embeddings()
    if isinstance(emb, NewTokenEmbedding):
        head = hf_model.get_output_embeddings()
        if not isinstance(head, NewTokenLMHead) and \
                head.weight is emb.weight:
            # Tied: the model read trained input rows but computed logits
            # with the untouched output rows; keep both by untying.
            new_head = nn.Linear(emb.embedding_dim, emb.num_embeddings,
                                 bias=False)
            new_head.weight = nn.Parameter(emb.weight.detach().clone())
            hf_model.lm_head = new_head
            for cfg in (hf_model.config, hf_model.config.text_config):
                cfg.tie_word_embeddings = False
            untied = True
        plain = nn.Embedding(emb.num_embeddings, emb.embedding_dim,
                             padding_idx=emb.padding_idx)
        plain.weight = nn.Parameter(emb.merged_weight())
        hf_model.set_input_embeddings(plain)
    head = hf_model.get_output_embeddings()
    if isinstance(head, NewTokenLMHead):
        plain = nn.Linear(head.in_features, head.out_features, bias=False)
        plain.weight = nn.Parameter(head.merged_weight())
        hf_model.lm_head = plain
    return untied


def native_state_dict(hf_model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state dict ``from_pretrained`` expects, checked key by key.

    Raises:
        KeyCoverageError: keys (or shapes) differ from a freshly built
            ``InternVLForConditionalGeneration`` with the same config.
    """
    state = dict(hf_model.state_dict())
    expected = expected_shapes(hf_model.config)
    if hf_model.config.tie_word_embeddings:
        state.pop('lm_head.weight', None)
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        shapes = sorted(k for k in set(got) & set(expected)
                        if got[k] != expected[k])
        raise KeyCoverageError(
            'The unwrapped backbone is not a native InternVL: missing '
            f'{missing[:10]}, unexpected {extra[:10]}, shape mismatches '
            f'{shapes[:10]}.')
    return state


def export_refsegmentor(config: Union[str, 'Config'],  # noqa: F821
                        checkpoint: str,
                        out_dir: str,
                        dtype: Optional[torch.dtype] = None,
                        max_shard_bytes: int = 2 << 30,
                        log: Log = print) -> dict:
    """Export a trained RefSegmentor as one self-contained folder.

    Args:
        config: the training config (path or ``Config``).
        checkpoint: the MMEngine checkpoint (``iter_N.pth``) or a state
            dict file of that config's model.
        out_dir: the output folder (created; see :mod:`.exported_model`).
        dtype: cast the backbone's floating weights (default: the dtype
            the backbone runs in; merges happen in float32 first).
        max_shard_bytes: backbone shard size.
        log: progress callback.

    Returns:
        dict: ``directory``, ``merged_lora`` (layer count), ``untied``,
        ``heads`` (number of head tensors), ``token_ids``.
    """
    from mmengine.config import Config

    from mmrefseg.registry import MODELS
    from mmrefseg.utils import register_all_modules
    start = time.perf_counter()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    out_dir = osp.abspath(out_dir)
    model = MODELS.build(cfg.model)
    state = state_dict_of(read_checkpoint(checkpoint), checkpoint)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise KeyError(f'{checkpoint} does not fit the model of its config: '
                       f'{err}') from None
    log(f'Loaded {checkpoint} ({len(state)} tensors)')
    backbone = model.backbone
    hf_model = backbone.hf
    stored = dtype or backbone.dtype
    # Merge in float32 so that LoRA deltas are not rounded twice.
    hf_model.float()
    merged = merge_lora_layers(hf_model)
    untied = unwrap_new_token_rows(hf_model)
    hf_model.config.text_config.vocab_size = \
        hf_model.get_input_embeddings().weight.shape[0]
    native = native_state_dict(hf_model)
    log(f'Merged {merged} LoRA layer(s)' +
        ('; untied the embeddings' if untied else ''))

    writer = ShardedSafetensorsWriter(out_dir, max_shard_bytes, log)
    for key in sorted(native):
        tensor = native[key]
        writer.add(key, tensor.to(stored) if tensor.is_floating_point()
                   else tensor)
    writer.close()
    hf_model.config.dtype = stored
    hf_model.config.architectures = ['InternVLForConditionalGeneration']
    hf_model.config.save_pretrained(out_dir)
    hf_model.generation_config.save_pretrained(out_dir)
    backbone.tokenizer.save_pretrained(out_dir)

    heads = {k: v.detach().contiguous().clone()
             for k, v in model.state_dict().items()
             if not k.startswith(BACKBONE_PREFIX)}
    from safetensors.torch import save_file
    save_file(heads, osp.join(out_dir, HEADS_FILE),
              metadata={'format': 'pt'})

    cfg_dict = cfg.to_dict()
    old_backbone = cfg_dict['model']['backbone']
    old_tokenizer = old_backbone.get('tokenizer') or \
        old_backbone.get('pretrained')
    cfg_dict = repoint_config(cfg_dict, old_tokenizer, out_dir)
    backbone_cfg = cfg_dict['model']['backbone']
    for key in DROPPED_BACKBONE_KEYS:
        backbone_cfg.pop(key, None)
    # The rows of the added tokens are trained now: keep them.
    backbone_cfg['init_new_token_rows'] = False
    backbone_cfg['torch_dtype'] = str(stored).replace('torch.', '')
    Config(cfg_dict).dump(osp.join(out_dir, CONFIG_FILE))

    token_ids = dict(sorted(backbone.tokenizer.get_added_vocab().items(),
                            key=lambda item: item[1]))
    info = dict(directory=out_dir, source_checkpoint=osp.abspath(checkpoint),
                source_config=osp.abspath(cfg.filename) if cfg.filename
                else None, merged_lora_layers=merged,
                untied_embeddings=untied, dtype=str(stored),
                head_tensors=sorted(heads), token_ids=token_ids)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, INFO_FILE), 'w') as f:
        json.dump(info, f, indent=2)
    log(f'Wrote {out_dir} in {time.perf_counter() - start:.1f}s: native '
        f'InternVL + tokenizer, {len(heads)} head tensor(s) in {HEADS_FILE},'
        f' config {CONFIG_FILE}')
    return dict(directory=out_dir, merged_lora=merged, untied=untied,
                heads=len(heads), token_ids=token_ids)
