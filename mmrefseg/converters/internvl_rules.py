# Copyright (c) mmrefseg contributors.
"""Key mapping tables: InternVL chat layout -> native InternVL.

``wqkv`` packing (InternLM2): the output rows form ``num_key_value_heads``
groups; each group holds ``num_key_value_groups`` query heads, then one key
head, then one value head, each ``head_dim`` rows. Query head
``h * groups + g`` therefore uses KV head ``h``, which is Llama's
grouped-query convention.

The InternViT ``qkv`` projection packs q, k, v as three consecutive blocks
of ``hidden_size`` rows.
"""
from typing import Dict, List, Sequence, Tuple

import torch

from .key_mapping import KeyCoverageError, Rule

VIT = 'model.vision_tower'
LLM = 'model.language_model'


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

    def transform(key: str, tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        layer = key.split('.layers.')[1].split('.')[0]
        kind = key.rsplit('.', 1)[1]
        q, k, v = unpack_internlm2_wqkv(tensor,
                                        text_cfg.num_attention_heads,
                                        text_cfg.num_key_value_heads,
                                        text_cfg.head_dim)
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
        # SwiGLU: w2(silu(w1 x) * w3 x)
        Rule(src + r'feed_forward\.w1\.weight',
             [dst + 'mlp.gate_proj.weight']),
        Rule(src + r'feed_forward\.w3\.weight', [dst + 'mlp.up_proj.weight']),
        Rule(src + r'feed_forward\.w2\.weight',
             [dst + 'mlp.down_proj.weight']),
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
