# Copyright (c) mmrefseg contributors.
"""InternVL chat checkpoints (``InternVLChatModel``) -> native transformers.

The original layout is InternViT (``vision_model.*``), the projector
``mlp1.*`` and an LLM under ``language_model.*``: InternLM2 (packed
``wqkv``, ``tok_embeddings``/``output``), Qwen2, Qwen3 or Llama. The native
layout is ``InternVLForConditionalGeneration``; InternLM2 has no native
class and becomes Llama, whose computation is the same once ``wqkv`` is
unpacked.

``wqkv`` packing (InternLM2): the output rows form ``num_key_value_heads``
groups; each group holds ``num_key_value_groups`` query heads, then one
key head, then one value head, each ``head_dim`` rows. Query head
``h * groups + g`` therefore uses KV head ``h``, which is Llama's
grouped-query convention.

The InternViT ``qkv`` projection packs q, k, v as three consecutive blocks
of ``hidden_size`` rows.
"""
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .key_mapping import (KeyCoverageError, MappingPlan, Rule, check_shapes,
                          plan_mapping)
from .tokenizer_files import (IMG_CONTEXT, chat_token_summary,
                              convert_tokenizer)
from .weights_io import ShardedSafetensorsWriter, WeightSource

Log = Callable[[str], None]
VIT = 'model.vision_tower'
LLM = 'model.language_model'
LM_FAMILIES = {
    'InternLM2ForCausalLM': 'internlm2',
    'Qwen2ForCausalLM': 'qwen2',
    'Qwen3ForCausalLM': 'qwen3',
    'LlamaForCausalLM': 'llama',
}
# llm_config entries that describe the original runtime, not the model.
_DROPPED_LLM_FIELDS = {
    'architectures', 'auto_map', '_name_or_path', 'attn_implementation',
    '_attn_implementation', '_attn_implementation_autoset', 'model_type',
    'transformers_version', 'use_bfloat16', 'torch_dtype', 'dtype',
    'bias', 'rope_scaling', 'rope_theta', 'tie_word_embeddings',
    '_flash_attn_2_enabled', 'use_flash_attn'
}


# ----------------------------------------------------------------- config
def read_chat_config(src: str) -> dict:
    """The ``config.json`` of an InternVL chat checkpoint."""
    path = osp.join(src, 'config.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'No config.json in {src}')
    with open(path) as f:
        cfg = json.load(f)
    if 'llm_config' not in cfg or 'vision_config' not in cfg:
        raise ValueError(
            f'{path} is not an InternVL chat config (no llm_config / '
            'vision_config). Is it already in the native layout?')
    return cfg


def llm_family(chat_cfg: dict) -> str:
    """'internlm2', 'qwen2', 'qwen3' or 'llama'."""
    arch = (chat_cfg['llm_config'].get('architectures') or [''])[0]
    if arch in LM_FAMILIES:
        return LM_FAMILIES[arch]
    model_type = chat_cfg['llm_config'].get('model_type', '')
    for family in ('internlm2', 'qwen3', 'qwen2', 'llama'):
        if model_type == family:
            return family
    raise ValueError(f'Unsupported LLM {arch or model_type!r}; supported: '
                     f'{sorted(LM_FAMILIES)}')


def _rope_parameters(llm: dict) -> dict:
    params = dict(rope_type='default',
                  rope_theta=float(llm.get('rope_theta', 10000.0)))
    scaling = llm.get('rope_scaling') or llm.get('rope_parameters')
    if scaling:
        kind = scaling.get('rope_type', scaling.get('type', 'default'))
        params.update({k: v for k, v in scaling.items() if k != 'type'})
        params['rope_type'] = kind
    return params


def build_text_config(chat_cfg: dict):
    """The native text config (InternLM2 -> ``LlamaConfig``)."""
    from transformers import CONFIG_MAPPING
    llm = chat_cfg['llm_config']
    family = llm_family(chat_cfg)
    tie = bool(llm.get('tie_word_embeddings', False))
    if family == 'internlm2':
        heads = llm['num_attention_heads']
        return CONFIG_MAPPING['llama'](
            vocab_size=llm['vocab_size'],
            hidden_size=llm['hidden_size'],
            intermediate_size=llm['intermediate_size'],
            num_hidden_layers=llm['num_hidden_layers'],
            num_attention_heads=heads,
            num_key_value_heads=llm.get('num_key_value_heads', heads),
            head_dim=llm['hidden_size'] // heads,
            hidden_act=llm.get('hidden_act', 'silu'),
            max_position_embeddings=llm.get('max_position_embeddings', 2048),
            initializer_range=llm.get('initializer_range', 0.02),
            rms_norm_eps=llm.get('rms_norm_eps', 1e-6),
            pad_token_id=llm.get('pad_token_id', 0),
            bos_token_id=llm.get('bos_token_id', 1),
            eos_token_id=llm.get('eos_token_id', 2),
            # InternLM2's `bias` covers wqkv and wo; its MLP has none.
            attention_bias=bool(llm.get('bias', True)),
            mlp_bias=False,
            rope_parameters=_rope_parameters(llm),
            tie_word_embeddings=tie)
    fields = {k: v for k, v in llm.items() if k not in _DROPPED_LLM_FIELDS}
    fields['rope_parameters'] = _rope_parameters(llm)
    return CONFIG_MAPPING[family](tie_word_embeddings=tie, **fields)


def build_hf_config(chat_cfg: dict, image_token_id: int):
    """``InternVLConfig`` equivalent to an InternVL chat config."""
    from transformers import InternVLConfig
    if chat_cfg.get('ps_version', 'v2') != 'v2':
        raise ValueError(
            f"ps_version={chat_cfg.get('ps_version')!r}: native InternVL "
            "implements the 'v2' pixel shuffle only (InternVL 1.5 and "
            'later).')
    vis = chat_cfg['vision_config']
    image_size = vis.get('image_size', 448)
    force = chat_cfg.get('force_image_size')
    if force and force != image_size:
        raise ValueError(f'force_image_size={force} differs from the ViT '
                         f'image_size={image_size}; not supported.')
    patch = vis.get('patch_size', 14)
    ratio = float(chat_cfg.get('downsample_ratio', 0.5))
    text = build_text_config(chat_cfg)
    vision = dict(
        hidden_size=vis['hidden_size'],
        intermediate_size=vis['intermediate_size'],
        num_hidden_layers=vis['num_hidden_layers'],
        num_attention_heads=vis['num_attention_heads'],
        image_size=image_size,
        patch_size=patch,
        num_channels=vis.get('num_channels', 3),
        attention_bias=bool(vis.get('qkv_bias', True)),
        use_qk_norm=bool(vis.get('qk_normalization', False)),
        # InternVisionConfig's default norm is RMSNorm (6B); 300M says so.
        norm_type=vis.get('norm_type', 'rms_norm'),
        layer_norm_eps=vis.get('layer_norm_eps', 1e-6),
        hidden_act=vis.get('hidden_act', 'gelu'),
        layer_scale_init_value=vis.get('initializer_factor', 0.1),
        # InternViT has no final norm and no mean pooling.
        use_mean_pooling=True,
        use_absolute_position_embeddings=True)
    return InternVLConfig(
        vision_config=vision,
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        image_seq_length=int((image_size // patch)**2 * ratio**2),
        downsample_ratio=ratio,
        projector_hidden_act='gelu',
        vision_feature_layer=chat_cfg.get('select_layer', -1),
        vision_feature_select_strategy='default',
        tie_word_embeddings=text.tie_word_embeddings)


# ------------------------------------------------------------------ rules
def _split_rows(targets: Sequence[str], sizes: Sequence[int]):
    """Transform: split dim 0 into consecutive blocks."""

    def transform(key: str, tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        if tensor.shape[0] != sum(sizes):
            raise KeyCoverageError(f'{key}: {tensor.shape[0]} rows, expected '
                                   f'{sum(sizes)}')
        return dict(zip(targets, torch.split(tensor, list(sizes), dim=0)))

    return transform


def unpack_internlm2_wqkv(tensor: torch.Tensor, num_heads: int,
                          num_kv_heads: int,
                          head_dim: int) -> Tuple[torch.Tensor, ...]:
    """Split InternLM2's grouped ``wqkv`` rows into (q, k, v)."""
    groups = num_heads // num_kv_heads
    rest = tensor.shape[1:]
    packed = tensor.reshape(num_kv_heads, groups + 2, head_dim, *rest)
    q = packed[:, :groups].reshape(num_heads * head_dim, *rest)
    k = packed[:, groups].reshape(num_kv_heads * head_dim, *rest)
    v = packed[:, groups + 1].reshape(num_kv_heads * head_dim, *rest)
    return q, k, v


def _wqkv_transform(text_cfg):
    heads = text_cfg.num_attention_heads
    kv = text_cfg.num_key_value_heads
    head_dim = text_cfg.head_dim

    def transform(key: str, tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        layer = key.split('.layers.')[1].split('.')[0]
        kind = key.rsplit('.', 1)[1]
        q, k, v = unpack_internlm2_wqkv(tensor, heads, kv, head_dim)
        base = f'{LLM}.layers.{layer}.self_attn'
        return {f'{base}.q_proj.{kind}': q, f'{base}.k_proj.{kind}': k,
                f'{base}.v_proj.{kind}': v}

    return transform


def vision_rules(hidden: int) -> List[Rule]:
    """InternViT + ``mlp1`` -> native vision tower and projector."""
    src = r'vision_model\.encoder\.layers\.(\d+)\.'
    dst = VIT + r'.encoder.layer.\1.'
    qkv_w = [dst + f'attention.{n}_proj.weight' for n in 'qkv']
    qkv_b = [dst + f'attention.{n}_proj.bias' for n in 'qkv']
    return [
        Rule(r'vision_model\.embeddings\.class_embedding',
             [VIT + '.embeddings.cls_token']),
        Rule(r'vision_model\.embeddings\.position_embedding',
             [VIT + '.embeddings.position_embeddings']),
        Rule(r'vision_model\.embeddings\.patch_embedding\.(weight|bias)',
             [VIT + r'.embeddings.patch_embeddings.projection.\1']),
        Rule(src + r'attn\.qkv\.weight', qkv_w,
             lambda key, t: _layer_split(key, t, qkv_w, hidden)),
        Rule(src + r'attn\.qkv\.bias', qkv_b,
             lambda key, t: _layer_split(key, t, qkv_b, hidden)),
        Rule(src + r'attn\.proj\.(weight|bias)',
             [dst + r'attention.projection_layer.\2']),
        Rule(src + r'attn\.(q_norm|k_norm)\.weight',
             [dst + r'attention.\2.weight']),
        Rule(src + r'mlp\.(fc1|fc2)\.(weight|bias)', [dst + r'mlp.\2.\3']),
        Rule(src + r'norm1\.(weight|bias)', [dst + r'layernorm_before.\2']),
        Rule(src + r'norm2\.(weight|bias)', [dst + r'layernorm_after.\2']),
        Rule(src + r'ls1', [dst + 'lambda_1']),
        Rule(src + r'ls2', [dst + 'lambda_2']),
        Rule(r'mlp1\.0\.(weight|bias)',
             [r'model.multi_modal_projector.layer_norm.\1']),
        Rule(r'mlp1\.1\.(weight|bias)',
             [r'model.multi_modal_projector.linear_1.\1']),
        Rule(r'mlp1\.3\.(weight|bias)',
             [r'model.multi_modal_projector.linear_2.\1']),
    ]


def _layer_split(key, tensor, templates, hidden):
    layer = key.split('.layers.')[1].split('.')[0]
    names = [t.replace(r'\1', layer) for t in templates]
    return _split_rows(names, [hidden] * 3)(key, tensor)


def internlm2_rules(text_cfg) -> List[Rule]:
    """InternLM2 -> Llama."""
    src = r'language_model\.model\.layers\.(\d+)\.'
    dst = LLM + r'.layers.\1.'
    qkv = lambda kind: [dst + f'self_attn.{n}_proj.{kind}'  # noqa: E731
                        for n in 'qkv']
    return [
        Rule(r'language_model\.model\.tok_embeddings\.weight',
             [LLM + '.embed_tokens.weight']),
        Rule(src + r'attention\.wqkv\.weight', qkv('weight'),
             _wqkv_transform(text_cfg)),
        Rule(src + r'attention\.wqkv\.bias', qkv('bias'),
             _wqkv_transform(text_cfg)),
        Rule(src + r'attention\.wo\.(weight|bias)',
             [dst + r'self_attn.o_proj.\2']),
        Rule(src + r'feed_forward\.w1\.weight', [dst + 'mlp.gate_proj.weight']),
        Rule(src + r'feed_forward\.w3\.weight', [dst + 'mlp.up_proj.weight']),
        Rule(src + r'feed_forward\.w2\.weight', [dst + 'mlp.down_proj.weight']),
        Rule(src + r'attention_norm\.weight',
             [dst + 'input_layernorm.weight']),
        Rule(src + r'ffn_norm\.weight',
             [dst + 'post_attention_layernorm.weight']),
        Rule(r'language_model\.model\.norm\.weight', [LLM + '.norm.weight']),
        Rule(r'language_model\.output\.weight', ['lm_head.weight']),
        Rule(src + r'attention\.rotary_emb\.inv_freq', [],
             reason='RoPE buffer, recomputed from the config'),
    ]


def hf_llm_rules() -> List[Rule]:
    """Qwen2 / Qwen3 / Llama: already HF names, only the prefix moves."""
    return [
        Rule(r'language_model\.model\.layers\.\d+\.self_attn\.rotary_emb\.'
             r'inv_freq', [], reason='RoPE buffer, recomputed'),
        Rule(r'language_model\.model\.(.+)', [LLM + r'.\1']),
        Rule(r'language_model\.lm_head\.weight', ['lm_head.weight']),
    ]


def chat_rules(hf_config, family: str,
               drop_tied_lm_head: bool = False) -> List[Rule]:
    """All rules for one checkpoint."""
    rules = vision_rules(hf_config.vision_config.hidden_size)
    if drop_tied_lm_head:
        rules.append(Rule(r'language_model\.(lm_head|output)\.weight', [],
                          reason='tied to the input embeddings'))
    if family == 'internlm2':
        rules += internlm2_rules(hf_config.text_config)
    else:
        rules += hf_llm_rules()
    return rules


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
    for key, (rule, names) in plan.targets.items():
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
    if not names:
        return None
    emb_names = [k for k in ('language_model.model.embed_tokens.weight',
                             'language_model.model.tok_embeddings.weight')
                 if k in shapes]
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
            filled, or shapes disagree; nothing is written in that case
            except the tokenizer.
    """
    start = time.perf_counter()
    chat_cfg = read_chat_config(src)
    family = llm_family(chat_cfg)
    log(f'Source: {src} ({chat_cfg.get("architectures")}, LLM {family})')
    tokenizer, token_ids = convert_tokenizer(tokenizer_src or src, dst,
                                             extra_tokens, log)
    if IMG_CONTEXT not in token_ids:
        raise ValueError(f'The tokenizer has no {IMG_CONTEXT} token.')
    log('Chat tokens: ' + ', '.join(chat_token_summary(token_ids)))
    hf_config = build_hf_config(chat_cfg, token_ids[IMG_CONTEXT])

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
