# Copyright (c) mmrefseg contributors.
"""A compact pure-torch forward of the *original* InternVL chat layout.

Written from the published facts of ``InternVLChatModel``, independently of
transformers' InternVL/Llama/Qwen2 code, and used to check that converted
checkpoints compute the same function:

* InternViT: conv patch embedding, CLS token and absolute position
  embedding; pre-norm blocks ``x += ls1 * proj(attn(norm1(x)))``,
  ``x += ls2 * fc2(gelu(fc1(norm2(x))))``; ``qkv`` rows are [q; k; v]; no
  final norm; CLS dropped.
* Pixel shuffle (ps v2, ratio 0.5): output channel chunk ``2 * dr + dc``
  holds input pixel ``(2i + dr, 2j + dc)``; then ``mlp1`` = LayerNorm,
  Linear, GELU, Linear; the result replaces the ``<IMG_CONTEXT>`` embeddings.
* InternLM2: RMSNorm pre-norm blocks; ``wqkv`` rows grouped per KV head as
  [q_0 .. q_{g-1}, k, v]; rotary embedding with rotate-half and dynamic
  NTK scaling beyond ``max_position_embeddings``; SwiGLU
  ``w2(silu(w1 x) * w3 x)``; final norm; ``output`` head.
* Qwen2: the same block with separate biased q/k/v projections.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _linear(x: Tensor, sd: Dict[str, Tensor], name: str) -> Tensor:
    return F.linear(x, sd[name + '.weight'], sd.get(name + '.bias'))


def intern_vit(sd: Dict[str, Tensor], cfg: dict, pixels: Tensor) -> Tensor:
    """Last-layer patch tokens (CLS dropped), (n, patches, C)."""
    c, heads = cfg['hidden_size'], cfg['num_attention_heads']
    patch = cfg['patch_size']
    pre = 'vision_model.'
    x = F.conv2d(pixels, sd[pre + 'embeddings.patch_embedding.weight'],
                 sd[pre + 'embeddings.patch_embedding.bias'], stride=patch)
    n = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    cls = sd[pre + 'embeddings.class_embedding'].expand(n, 1, c)
    x = torch.cat([cls, x], 1) + sd[pre + 'embeddings.position_embedding']
    eps = cfg['layer_norm_eps']
    for i in range(cfg['num_hidden_layers']):
        p = f'{pre}encoder.layers.{i}.'
        h = F.layer_norm(x, (c, ), sd[p + 'norm1.weight'],
                         sd[p + 'norm1.bias'], eps)
        qkv = _linear(h, sd, p + 'attn.qkv').reshape(n, -1, 3, heads,
                                                     c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // heads),
                            -1)
        h = (att @ v).transpose(1, 2).reshape(n, -1, c)
        x = x + _linear(h, sd, p + 'attn.proj') * sd[p + 'ls1']
        h = F.layer_norm(x, (c, ), sd[p + 'norm2.weight'],
                         sd[p + 'norm2.bias'], eps)
        h = _linear(F.gelu(_linear(h, sd, p + 'mlp.fc1')), sd, p + 'mlp.fc2')
        x = x + h * sd[p + 'ls2']
    return x[:, 1:]


def image_embeds(sd: Dict[str, Tensor], cfg: dict, pixels: Tensor) -> Tensor:
    """ViT -> pixel shuffle (v2, 0.5) -> mlp1, (n, tokens, C_llm)."""
    feats = intern_vit(sd, cfg, pixels)
    n, tokens, c = feats.shape
    side = int(math.isqrt(tokens))
    grid = feats.reshape(n, side // 2, 2, side // 2, 2, c)
    # chunk index 2 * dr + dc, channels within a chunk kept in order
    x = grid.permute(0, 1, 3, 2, 4, 5).reshape(n, (side // 2)**2, 4 * c)
    x = F.layer_norm(x, (4 * c, ), sd['mlp1.0.weight'], sd['mlp1.0.bias'],
                     1e-5)
    x = F.gelu(_linear(x, sd, 'mlp1.1'))
    return _linear(x, sd, 'mlp1.3')


def _rms(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) +
                                       eps))


def _rope(x: Tensor, base: float, positions: Tensor) -> Tensor:
    """Rotate-half rotary embedding; x is (B, heads, L, hd)."""
    hd = x.shape[-1]
    inv = 1.0 / base**(torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = positions[:, None].float() * inv[None]
    cos = torch.cat([ang, ang], -1).cos()
    sin = torch.cat([ang, ang], -1).sin()
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def _attend(q: Tensor, k: Tensor, v: Tensor, groups: int) -> Tensor:
    """Causal attention; query head j reads KV head j // groups."""
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    length = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(length, length, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float('-inf'))
    return torch.softmax(scores, -1) @ v


def _llm(sd, cfg, embeds, family: str) -> Tensor:
    bsz, length, c = embeds.shape
    heads, kv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd, groups, eps = c // heads, heads // kv, cfg['rms_norm_eps']
    base = float(cfg['rope_theta'])
    scaling = cfg.get('rope_scaling') or {}
    max_pos = cfg['max_position_embeddings']
    if scaling.get('type') == 'dynamic' and length > max_pos:
        # InternLM2DynamicNTKScalingRotaryEmbedding
        f = scaling['factor']
        base = base * ((f * length / max_pos) - (f - 1))**(hd / (hd - 2))
    pos = torch.arange(length)
    x = embeds
    pre = 'language_model.model.'
    for i in range(cfg['num_hidden_layers']):
        p = f'{pre}layers.{i}.'
        if family == 'internlm2':
            h = _rms(x, sd[p + 'attention_norm.weight'], eps)
            qkv = _linear(h, sd, p + 'attention.wqkv').view(
                bsz, length, kv, groups + 2, hd)
            q = qkv[:, :, :, :groups].reshape(bsz, length, heads, hd)
            k, v = qkv[:, :, :, -2], qkv[:, :, :, -1]
        else:
            h = _rms(x, sd[p + 'input_layernorm.weight'], eps)
            q = _linear(h, sd, p + 'self_attn.q_proj').view(
                bsz, length, heads, hd)
            k = _linear(h, sd, p + 'self_attn.k_proj').view(
                bsz, length, kv, hd)
            v = _linear(h, sd, p + 'self_attn.v_proj').view(
                bsz, length, kv, hd)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        out = _attend(_rope(q, base, pos), _rope(k, base, pos), v, groups)
        out = out.transpose(1, 2).reshape(bsz, length, c)
        if family == 'internlm2':
            x = x + _linear(out, sd, p + 'attention.wo')
            h = _rms(x, sd[p + 'ffn_norm.weight'], eps)
            gate, up = (_linear(h, sd, p + f'feed_forward.{w}')
                        for w in ('w1', 'w3'))
            x = x + _linear(F.silu(gate) * up, sd, p + 'feed_forward.w2')
        else:
            x = x + _linear(out, sd, p + 'self_attn.o_proj')
            h = _rms(x, sd[p + 'post_attention_layernorm.weight'], eps)
            gate, up = (_linear(h, sd, p + f'mlp.{w}_proj')
                        for w in ('gate', 'up'))
            x = x + _linear(F.silu(gate) * up, sd, p + 'mlp.down_proj')
    return _rms(x, sd[pre + 'norm.weight'], eps)


def chat_logits(sd: Dict[str, Tensor], chat_cfg: dict, input_ids: Tensor,
                pixels: Tensor, img_context_id: int) -> Tensor:
    """Logits of the original model, (B, L, V)."""
    llm = chat_cfg['llm_config']
    family = 'internlm2' if llm['model_type'] == 'internlm2' else 'qwen2'
    if family == 'internlm2':
        emb, head = (sd['language_model.model.tok_embeddings.weight'],
                     sd['language_model.output.weight'])
    else:
        emb, head = (sd['language_model.model.embed_tokens.weight'],
                     sd['language_model.lm_head.weight'])
    x = emb[input_ids].clone()
    vis = image_embeds(sd, chat_cfg['vision_config'], pixels)
    x[input_ids == img_context_id] = vis.reshape(-1, vis.shape[-1])
    hidden = _llm(sd, llm, x, family)
    return hidden @ head.T
