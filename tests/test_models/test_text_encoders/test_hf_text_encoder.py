# Copyright (c) mmrefseg contributors.
import pytest
import torch

from mmrefseg.models.text_encoders import HFTextEncoder
from mmrefseg.utils.tokenizer import build_tokenizer

TOKENIZER = dict(type='tiny_bpe', vocab_size=1024)
BERT = dict(model_type='bert', hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=32)


def _encoder(**kwargs) -> HFTextEncoder:
    torch.manual_seed(0)
    return HFTextEncoder(config=BERT, tokenizer=TOKENIZER, **kwargs).eval()


def _tokens(texts, pad_to=None):
    tok = build_tokenizer(TOKENIZER)
    kwargs = dict(padding='max_length', max_length=pad_to) if pad_to else \
        dict(padding=True)
    out = tok(texts, return_tensors='pt', **kwargs)
    return out['input_ids'], out['attention_mask']


def test_widths_come_from_config_and_tokenizer():
    enc = _encoder()
    tok = build_tokenizer(TOKENIZER)
    assert enc.embed_dims == 32
    assert enc.vocab_size == len(tok)
    assert enc.model.get_input_embeddings().num_embeddings == len(tok)
    assert enc.model.config.pad_token_id == tok.pad_token_id


def test_mean_pooling_ignores_padding():
    enc = _encoder()
    ids, mask = _tokens(['the red circle on the left', 'a star'])
    short_ids, short_mask = _tokens(['a star'])
    with torch.no_grad():
        both = enc(ids, mask)
        alone = enc(short_ids, short_mask)
    assert both.shape == (2, 32)
    # 'a star' padded to the longer sentence pools to the same vector.
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both[0], both[1])


def test_first_pooling_is_first_state():
    enc = _encoder(pooling='first')
    ids, mask = _tokens(['the blue square'])
    with torch.no_grad():
        states = enc.model(input_ids=ids,
                           attention_mask=mask).last_hidden_state
        torch.testing.assert_close(enc(ids, mask), states[:, 0])


def test_gradients_reach_the_embeddings():
    enc = _encoder()
    enc.train()
    ids, mask = _tokens(['the green triangle'])
    # A random read-out: the plain sum of LayerNorm'd states is constant.
    weights = torch.randn(32, generator=torch.Generator().manual_seed(1))
    (enc(ids, mask) * weights).sum().backward()
    grad = enc.model.get_input_embeddings().weight.grad
    assert grad is not None and grad[ids[0]].abs().sum() > 0


def test_empty_batch():
    enc = _encoder()
    out = enc(torch.zeros((0, 3), dtype=torch.long),
              torch.zeros((0, 3), dtype=torch.long))
    assert out.shape == (0, 32)


@pytest.mark.parametrize('bad, match', [
    (dict(config=dict(BERT, vocab_size=10)), 'vocab_size'),
    (dict(config={k: v for k, v in BERT.items() if k != 'model_type'}),
     'model_type'),
    (dict(pooling='max'), 'pooling'),
])
def test_bad_config(bad, match):
    kwargs = dict(config=BERT, tokenizer=TOKENIZER)
    kwargs.update(bad)
    with pytest.raises((ValueError, KeyError), match=match):
        HFTextEncoder(**kwargs)
