# Copyright (c) mmrefseg contributors.
from mmrefseg.testing import train_tiny_bpe
from mmrefseg.testing.tiny_bpe import TINY_SPECIAL_TOKENS, tiny_corpus
from mmrefseg.utils import build_tokenizer
from mmrefseg.utils.tokenizer import IMG_CONTEXT_TOKEN, PAD_TOKEN


def test_tiny_bpe_is_deterministic_with_fixed_special_ids():
    a, b = train_tiny_bpe(400), train_tiny_bpe(400)
    assert a.get_vocab() == b.get_vocab()
    assert len(a) == 400
    assert a.convert_tokens_to_ids(PAD_TOKEN) == 0
    # tiny_internvl_config's default image_token_id.
    assert a.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) == 5
    assert [a.convert_tokens_to_ids(t) for t in TINY_SPECIAL_TOKENS] == \
        list(range(len(TINY_SPECIAL_TOKENS)))
    assert tiny_corpus() == tiny_corpus()


def test_tiny_bpe_type_still_builds_from_a_config_entry():
    tok = build_tokenizer(dict(type='tiny_bpe', vocab_size=400),
                          extra_special_tokens=['[SEG]'])
    text = 'Can you segment the red circle in this image? 16'
    assert tok.decode(tok(text)['input_ids']) == text
    # Digits split one by one, as Qwen2's tokenizer does.
    assert tok.tokenize('16') == ['1', '6']
    assert tok.convert_tokens_to_ids('[SEG]') == 400
