# Copyright (c) mmrefseg contributors.
"""InternVL chat -> native transformers: faithful miniatures.

Tiny checkpoints in the original layout (InternLM2 with packed ``wqkv`` and
Qwen2) are converted, loaded with ``InternVLForConditionalGeneration`` and
compared with a pure-torch forward of the original layout
(:mod:`reference_internvl_chat`): float32 logits must agree to 1e-5.
"""
import json
import os
import os.path as osp
import pickle

import pytest
import torch
from chat_checkpoints import (
    SPM_WORDS,
    make_internlm2_chat,
    make_qwen2_chat,
    save_checkpoint,
)
from reference_internvl_chat import chat_logits
from transformers import AutoTokenizer, InternVLForConditionalGeneration

from mmrefseg.converters import KeyCoverageError
from mmrefseg.converters.internvl_chat import convert_internvl_chat
from mmrefseg.converters.internvl_rules import unpack_internlm2_wqkv
from mmrefseg.fileio import UnsafeFileError

QUIET = dict(log=lambda msg: None)


def _inputs(ids: dict, vocab_words, batch: int = 2, length: int = 60):
    """Prompts with one 56 px image (4 tokens) each, longer than 48."""
    gen = torch.Generator().manual_seed(3)
    words = torch.tensor(vocab_words)
    rows = []
    for _ in range(batch):
        text = words[torch.randint(len(words), (length - 7, ),
                                   generator=gen)].tolist()
        rows.append([ids['<|im_start|>'], ids['<img>']] +
                    [ids['<IMG_CONTEXT>']] * 4 + [ids['</img>']] + text)
    pixels = torch.randn(batch, 3, 56, 56, generator=gen)
    return torch.tensor(rows), pixels


def _native_logits(dst, input_ids, pixels):
    model = InternVLForConditionalGeneration.from_pretrained(
        dst, dtype=torch.float32, attn_implementation='eager').eval()
    with torch.no_grad():
        return model(input_ids=input_ids, pixel_values=pixels).logits


def test_internlm2_miniature_computes_the_original_function(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    state, ids = make_internlm2_chat(str(src))
    out = convert_internvl_chat(str(src), str(dst), **QUIET)

    cfg = json.loads((dst / 'config.json').read_text())
    assert cfg['text_config']['model_type'] == 'llama'
    assert cfg['image_token_id'] == ids['<IMG_CONTEXT>']
    assert cfg['text_config']['rope_parameters']['rope_type'] == 'dynamic'
    chat_cfg = json.loads((src / 'config.json').read_text())
    words = [ids[w] for w in SPM_WORDS]
    input_ids, pixels = _inputs(ids, words)
    expected = chat_logits(state, chat_cfg, input_ids, pixels,
                           ids['<IMG_CONTEXT>'])
    got = _native_logits(str(dst), input_ids, pixels)
    # Both sides run float32 with RMSNorm and dynamic-NTK RoPE computed in
    # different orders: the largest difference is 0.8e-5 on an Intel AMX
    # CPU and 1.4e-5 on an AMD Zen 4 (even in float64 the float32 casts
    # inside RMSNorm leave 1.1e-5). A wrong key or transposed weight moves
    # the logits by 1e-1 or more, so 3e-5 still catches every conversion
    # error while passing on both CPUs.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=3e-5)
    assert out['family'] == 'internlm2'


def test_internlm2_tokenizer_is_native_and_keeps_ids(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    _, ids = make_internlm2_chat(str(src))
    convert_internvl_chat(str(src), str(dst), **QUIET)
    tok_cfg = json.loads((dst / 'tokenizer_config.json').read_text())
    assert 'auto_map' not in tok_cfg
    tok = AutoTokenizer.from_pretrained(str(dst), trust_remote_code=False)
    for name in ('<img>', '</img>', '<IMG_CONTEXT>', '<|im_start|>',
                 '<|im_end|>', '[SEG]', '[REJ]', '<s>', '</s>'):
        assert tok.convert_tokens_to_ids(name) == ids[name], name
    enc = tok('<|im_start|>user\nthe segment<IMG_CONTEXT>[SEG]').input_ids
    # BOS, special tokens whole, '▁user' not a piece: BPE by piece score.
    assert enc[:2] == [ids['<s>'], ids['<|im_start|>']]
    assert enc[-2:] == [ids['<IMG_CONTEXT>'], ids['[SEG]']]
    assert ids['▁segment'] in enc
    assert tok.decode(enc, skip_special_tokens=True) == 'user\nthe segment'


def test_qwen2_miniature_computes_the_original_function(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    state, ids = make_qwen2_chat(str(src))
    convert_internvl_chat(str(src), str(dst), **QUIET)
    chat_cfg = json.loads((src / 'config.json').read_text())
    input_ids, pixels = _inputs(ids, list(range(10, 250)))
    expected = chat_logits(state, chat_cfg, input_ids, pixels,
                           ids['<IMG_CONTEXT>'])
    torch.testing.assert_close(
        _native_logits(str(dst), input_ids, pixels), expected, rtol=1e-5,
        atol=1e-5)
    tok_cfg = json.loads((dst / 'tokenizer_config.json').read_text())
    assert 'auto_map' not in tok_cfg
    cfg = json.loads((dst / 'config.json').read_text())
    assert cfg['image_token_id'] == ids['<IMG_CONTEXT>']


def test_tied_qwen2_drops_the_duplicate_head(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    make_qwen2_chat(str(src), tied=True)
    out = convert_internvl_chat(str(src), str(dst), **QUIET)
    assert out['hf_config'].tie_word_embeddings
    assert 'language_model.lm_head.weight' in out['dropped']


def test_bin_shards_and_streaming_output(tmp_path):
    """Pickled shards load with weights_only; output is sharded."""
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    state, ids = make_internlm2_chat(str(src), fmt='bin')
    convert_internvl_chat(str(src), str(dst), max_shard_bytes=200_000,
                          **QUIET)
    index = json.loads((dst / 'model.safetensors.index.json').read_text())
    assert len(set(index['weight_map'].values())) > 1
    assert not [f for f in os.listdir(dst) if f.endswith('.tmp')]
    model = InternVLForConditionalGeneration.from_pretrained(str(dst))
    q, k, v = unpack_internlm2_wqkv(
        state['language_model.model.layers.1.attention.wqkv.weight'], 4, 2,
        16)
    attn = model.model.language_model.layers[1].self_attn
    assert torch.equal(attn.k_proj.weight, k)
    assert torch.equal(attn.q_proj.weight, q)


class _Exploit:
    """Pickles to a call of os.system when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.mark.parametrize('zipped', [True, False])
def test_malicious_bin_is_refused(tmp_path, zipped):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    make_internlm2_chat(str(src), fmt='bin')
    marker = tmp_path / 'pwned'
    shard = sorted(src.glob('pytorch_model-*.bin'))[0]
    payload = {'vision_model.embeddings.class_embedding': _Exploit(
        str(marker))}
    if zipped:
        torch.save(payload, shard)
    else:
        with open(shard, 'wb') as f:
            pickle.dump(payload, f)
    with pytest.raises(UnsafeFileError, match='Refusing to load'):
        convert_internvl_chat(str(src), str(dst), **QUIET)
    assert not marker.exists()


def test_unknown_and_missing_keys_are_named(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    state, _ = make_internlm2_chat(str(src))
    cfg = json.loads((src / 'config.json').read_text())
    state['vision_model.encoder.layers.0.attn.mystery'] = torch.zeros(2)
    del state['language_model.model.layers.1.ffn_norm.weight']
    save_checkpoint(str(src), state, cfg)
    with pytest.raises(KeyCoverageError) as err:
        convert_internvl_chat(str(src), str(tmp_path / 'dst'), **QUIET)
    msg = str(err.value)
    assert 'vision_model.encoder.layers.0.attn.mystery' in msg
    assert 'model.language_model.layers.1.post_attention_layernorm.weight' \
        in msg
    assert not osp.exists(tmp_path / 'dst' / 'model.safetensors')


def test_converted_tokenizer_matches_sentencepiece(tmp_path):
    """The converted fast tokenizer encodes as SentencePiece itself does.

    sentencepiece is a test requirement (not a runtime one): a plain import,
    so a CI without it fails instead of skipping.
    """
    import sentencepiece as spm
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    src.mkdir()
    _, ids = make_internlm2_chat(str(src))
    convert_internvl_chat(str(src), str(dst), **QUIET)
    proc = spm.SentencePieceProcessor(model_file=str(src / 'tokenizer.model'))
    tok = AutoTokenizer.from_pretrained(str(dst))
    for text in ('the segment', 'user\nthe', 'a cat  on ☃ mat', 'ségment'):
        assert tok(text).input_ids == [ids['<s>']] + proc.encode(text)
