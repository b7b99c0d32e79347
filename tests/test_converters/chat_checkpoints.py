# Copyright (c) mmrefseg contributors.
"""Tiny checkpoints in the *original* InternVL chat layout.

Key names, shapes and packing follow the released InternVL chat models:
InternViT (``vision_model.*``, packed ``attn.qkv``, ``ls1``/``ls2``),
``mlp1.{0,1,3}``, and InternLM2 (``attention.wqkv`` packed per KV group as
[q_0..q_{g-1}, k, v], ``tok_embeddings``, ``output``) or Qwen2 (HF names
under ``language_model.``). The InternLM2 tokenizer is a SentencePiece BPE
model written with a minimal protobuf encoder, plus the added-token files
and a remote-code ``tokenizer_config.json`` as shipped by InternVL2.5.
"""
import json
import os.path as osp
import struct
from typing import Dict, List, Tuple

import torch

VIT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
           num_hidden_layers=2, image_size=56, patch_size=14)
SPECIAL_ADDED = ['<img>', '</img>', '<IMG_CONTEXT>', '<quad>', '</quad>',
                 '<ref>', '</ref>', '<box>', '</box>']


# --------------------------------------------------------- sentencepiece
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload) -> bytes:
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 5:
        return tag + struct.pack('<f', payload)
    return tag + _varint(len(payload)) + payload


def write_spm_model(path: str, pieces: List[Tuple[str, float, int]],
                    add_dummy_prefix: bool = True) -> None:
    """A SentencePiece BPE ModelProto with byte fallback."""
    blob = b''
    for piece, score, kind in pieces:
        msg = (_field(1, 2, piece.encode()) + _field(2, 5, score) +
               _field(3, 0, kind))
        blob += _field(1, 2, msg)
    trainer = (_field(3, 0, 2) + _field(35, 0, 1) + _field(40, 0, 0) +
               _field(45, 2, b'<unk>'))
    normalizer = (_field(1, 2, b'identity') +
                  _field(3, 0, int(add_dummy_prefix)) + _field(4, 0, 0))
    blob += _field(2, 2, trainer) + _field(3, 2, normalizer)
    with open(path, 'wb') as f:
        f.write(blob)


SPM_WORDS = ['▁', 'a', 'c', 'e', 'g', 'm', 'n', 'o', 'r', 's', 't', 'h', 'i',
             'u', 'y', 'se', 'eg', '▁s', '▁t', 'th', 'the', '▁the', 'me',
             'nt', 'en', 'seg', '▁seg', 'ment', '▁segment', 'er', '▁us',
             '▁user', 'us', 'ser', '\n']


def internlm2_tokenizer_files(root: str,
                              extra_added: List[str]) -> Dict[str, int]:
    """InternLM2-style tokenizer files; returns token -> id."""
    pieces = [('<unk>', 0.0, 2), ('<s>', 0.0, 3), ('</s>', 0.0, 3)]
    pieces += [(f'<0x{b:02X}>', 0.0, 6) for b in range(256)]
    pieces += [(w, -float(i), 1) for i, w in enumerate(SPM_WORDS)]
    pieces += [('<|im_end|>', 0.0, 4), ('<|im_start|>', 0.0, 4)]
    write_spm_model(osp.join(root, 'tokenizer.model'), pieces)
    size = len(pieces)
    added = {t: size + i for i, t in enumerate(SPECIAL_ADDED + extra_added)}
    with open(osp.join(root, 'added_tokens.json'), 'w') as f:
        json.dump(added, f)
    decoder = {str(i): dict(content=p, special=True, lstrip=False,
                            rstrip=False, normalized=False, single_word=False)
               for i, (p, _, kind) in enumerate(pieces) if kind in (2, 3, 4)}
    for text, idx in added.items():
        decoder[str(idx)] = dict(content=text, special=True, lstrip=False,
                                 rstrip=False, normalized=False,
                                 single_word=False)
    cfg = dict(
        tokenizer_class='InternLM2Tokenizer',
        auto_map=dict(AutoTokenizer=['tokenization_internlm2.'
                                     'InternLM2Tokenizer', None]),
        bos_token='<s>', eos_token='</s>', pad_token='</s>',
        unk_token='<unk>', add_bos_token=True, add_eos_token=False,
        clean_up_tokenization_spaces=False, model_max_length=8192,
        added_tokens_decoder=decoder)
    with open(osp.join(root, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f)
    ids = {p: i for i, (p, _, _) in enumerate(pieces)}
    ids.update(added)
    return ids


# ------------------------------------------------------------ weights
def vit_state(gen: torch.Generator, c: int = 32, inter: int = 64,
              layers: int = 2, image: int = 56, patch: int = 14,
              llm: int = 64) -> Dict[str, torch.Tensor]:
    """InternViT-300M-style weights (LayerNorm, qkv bias) plus mlp1."""
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    n = (image // patch)**2 + 1
    sd = {
        'vision_model.embeddings.class_embedding': r(1, 1, c),
        'vision_model.embeddings.position_embedding': r(1, n, c),
        'vision_model.embeddings.patch_embedding.weight': r(c, 3, patch,
                                                            patch),
        'vision_model.embeddings.patch_embedding.bias': r(c),
    }
    for i in range(layers):
        p = f'vision_model.encoder.layers.{i}.'
        sd.update({
            p + 'attn.qkv.weight': r(3 * c, c), p + 'attn.qkv.bias': r(3 * c),
            p + 'attn.proj.weight': r(c, c), p + 'attn.proj.bias': r(c),
            p + 'mlp.fc1.weight': r(inter, c), p + 'mlp.fc1.bias': r(inter),
            p + 'mlp.fc2.weight': r(c, inter), p + 'mlp.fc2.bias': r(c),
            p + 'norm1.weight': 1 + r(c), p + 'norm1.bias': r(c),
            p + 'norm2.weight': 1 + r(c), p + 'norm2.bias': r(c),
            p + 'ls1': 1 + r(c), p + 'ls2': 1 + r(c)})
    sd.update({
        'mlp1.0.weight': 1 + r(4 * c), 'mlp1.0.bias': r(4 * c),
        'mlp1.1.weight': r(llm, 4 * c), 'mlp1.1.bias': r(llm),
        'mlp1.3.weight': r(llm, llm), 'mlp1.3.bias': r(llm)})
    return sd


def vit_config() -> dict:
    return dict(VIT, qkv_bias=True, qk_normalization=False,
                norm_type='layer_norm', layer_norm_eps=1e-6,
                hidden_act='gelu', initializer_factor=0.1,
                drop_path_rate=0.0, use_flash_attn=False,
                architectures=['InternVisionModel'])


def internlm2_state(gen, vocab, c=64, inter=128, layers=2, heads=4, kv=2,
                    bias=True) -> Dict[str, torch.Tensor]:
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    hd = c // heads
    rows = (heads + 2 * kv) * hd
    sd = {'language_model.model.tok_embeddings.weight': r(vocab, c),
          'language_model.model.norm.weight': 1 + r(c),
          'language_model.output.weight': r(vocab, c)}
    for i in range(layers):
        p = f'language_model.model.layers.{i}.'
        sd.update({
            p + 'attention.wqkv.weight': r(rows, c),
            p + 'attention.wo.weight': r(c, c),
            p + 'feed_forward.w1.weight': r(inter, c),
            p + 'feed_forward.w3.weight': r(inter, c),
            p + 'feed_forward.w2.weight': r(c, inter),
            p + 'attention_norm.weight': 1 + r(c),
            p + 'ffn_norm.weight': 1 + r(c)})
        if bias:
            sd[p + 'attention.wqkv.bias'] = r(rows)
            sd[p + 'attention.wo.bias'] = r(c)
    return sd


def qwen2_state(gen, vocab, c=64, inter=128, layers=2, heads=4, kv=2,
                tied=False) -> Dict[str, torch.Tensor]:
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    hd = c // heads
    sd = {'language_model.model.embed_tokens.weight': r(vocab, c),
          'language_model.model.norm.weight': 1 + r(c)}
    sd['language_model.lm_head.weight'] = \
        sd['language_model.model.embed_tokens.weight'].clone() if tied \
        else r(vocab, c)
    for i in range(layers):
        p = f'language_model.model.layers.{i}.'
        sd.update({
            p + 'self_attn.q_proj.weight': r(heads * hd, c),
            p + 'self_attn.q_proj.bias': r(heads * hd),
            p + 'self_attn.k_proj.weight': r(kv * hd, c),
            p + 'self_attn.k_proj.bias': r(kv * hd),
            p + 'self_attn.v_proj.weight': r(kv * hd, c),
            p + 'self_attn.v_proj.bias': r(kv * hd),
            p + 'self_attn.o_proj.weight': r(c, heads * hd),
            p + 'mlp.gate_proj.weight': r(inter, c),
            p + 'mlp.up_proj.weight': r(inter, c),
            p + 'mlp.down_proj.weight': r(c, inter),
            p + 'input_layernorm.weight': 1 + r(c),
            p + 'post_attention_layernorm.weight': 1 + r(c)})
    return sd


def chat_config(llm_config: dict, architectures=('InternVLChatModel', )):
    return dict(
        architectures=list(architectures), model_type='internvl_chat',
        auto_map=dict(AutoModel='modeling_internvl_chat.InternVLChatModel'),
        vision_config=vit_config(), llm_config=llm_config, select_layer=-1,
        downsample_ratio=0.5, ps_version='v2', template='internvl2_5',
        force_image_size=VIT['image_size'], dynamic_image_size=False,
        use_thumbnail=True, min_dynamic_patch=1, max_dynamic_patch=6,
        use_backbone_lora=0, use_llm_lora=0)


def internlm2_llm_config(vocab: int, bias: bool = True) -> dict:
    return dict(
        architectures=['InternLM2ForCausalLM'], model_type='internlm2',
        auto_map=dict(AutoModel='modeling_internlm2.InternLM2ForCausalLM'),
        vocab_size=vocab, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        hidden_act='silu', rms_norm_eps=1e-5, rope_theta=1000000,
        rope_scaling=dict(type='dynamic', factor=2.0),
        # Shorter than the test sequence so dynamic NTK scaling is used.
        max_position_embeddings=48, bias=bias, pad_token_id=2,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
        attn_implementation='flash_attention_2', torch_dtype='bfloat16')


def qwen2_llm_config(vocab: int, tied: bool = False) -> dict:
    return dict(
        architectures=['Qwen2ForCausalLM'], model_type='qwen2',
        vocab_size=vocab, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        hidden_act='silu', rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=4096, max_window_layers=2,
        use_sliding_window=False, sliding_window=None,
        tie_word_embeddings=tied, bos_token_id=None, eos_token_id=2,
        attn_implementation='flash_attention_2', torch_dtype='bfloat16')


def save_checkpoint(root: str, state: Dict[str, torch.Tensor], cfg: dict,
                    shards: int = 2, fmt: str = 'safetensors') -> None:
    """Write ``state`` in ``shards`` files with an index, like the Hub."""
    keys = list(state)
    per = -(-len(keys) // shards)
    weight_map = {}
    for s in range(shards):
        part = {k: state[k].contiguous() for k in keys[s * per:(s + 1) * per]}
        if fmt == 'safetensors':
            from safetensors.torch import save_file
            name = f'model-{s + 1:05d}-of-{shards:05d}.safetensors'
            save_file(part, osp.join(root, name), metadata={'format': 'pt'})
        else:
            name = f'pytorch_model-{s + 1:05d}-of-{shards:05d}.bin'
            torch.save(part, osp.join(root, name))
        weight_map.update({k: name for k in part})
    index = 'model.safetensors.index.json' if fmt == 'safetensors' else \
        'pytorch_model.bin.index.json'
    with open(osp.join(root, index), 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    with open(osp.join(root, 'config.json'), 'w') as f:
        json.dump(cfg, f)


def make_internlm2_chat(root: str, extra_added=('[SEG]', '[REJ]'),
                        extra_state=None, fmt='safetensors', seed=0):
    """A tiny InternVL2.5-8B-like checkpoint; returns (state, token ids)."""
    ids = internlm2_tokenizer_files(root, list(extra_added))
    vocab = max(ids.values()) + 1
    gen = torch.Generator().manual_seed(seed)
    state = vit_state(gen)
    state.update(internlm2_state(gen, vocab))
    state.update(extra_state or {})
    save_checkpoint(root, state, chat_config(internlm2_llm_config(vocab)),
                    fmt=fmt)
    return state, ids


def make_qwen2_chat(root: str, extra_tokens=('[SEG]', '[REJ]'), tied=False,
                    extra_state=None, seed=1, save_tokenizer=True):
    """A tiny InternVL2.5-1B-like checkpoint; returns (state, token ids)."""
    from mmrefseg.testing import train_tiny_bpe
    tok = train_tiny_bpe(300)
    tok.add_tokens(list(extra_tokens), special_tokens=True)
    if save_tokenizer:
        tok.save_pretrained(root)
        path = osp.join(root, 'tokenizer_config.json')
        with open(path) as f:
            cfg = json.load(f)
        cfg['auto_map'] = dict(AutoTokenizer=['remote.Tok', None])
        with open(path, 'w') as f:
            json.dump(cfg, f)
    vocab = len(tok)
    gen = torch.Generator().manual_seed(seed)
    state = vit_state(gen)
    state.update(qwen2_state(gen, vocab, tied=tied))
    state.update(extra_state or {})
    save_checkpoint(root, state, chat_config(qwen2_llm_config(vocab, tied)))
    return state, tok.get_vocab()
