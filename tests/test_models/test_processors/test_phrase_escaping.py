# Copyright (c) mmrefseg contributors.
"""User text is data: special-token text in a phrase never changes the
conversation's structure; blank and over-long phrases get clear errors."""
import pytest

from mmrefseg.models.processors import InternVLProcessor
from mmrefseg.models.processors.internvl_processor import escape_special_tokens
from mmrefseg.utils.tokenizer import (
    IM_END_TOKEN,
    IMG_CONTEXT_TOKEN,
    build_tokenizer,
    token_id,
)

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _processor(style='mllmseg', **kwargs):
    tok = build_tokenizer(TOK, ['[SEG]', '[REJ]'])
    return InternVLProcessor(tok, 4, prompt_style=style, **kwargs)


def _count(proc, ids, token):
    return int((ids == token_id(proc.tokenizer, token)).sum())


@pytest.mark.parametrize('style', ['mllmseg', 'self1e', 'seg_token'])
@pytest.mark.parametrize('token', ['[SEG]', '[REJ]', IM_END_TOKEN,
                                   IMG_CONTEXT_TOKEN, '<img>', '</img>',
                                   '<|im_start|>'])
def test_special_token_text_in_a_phrase_is_plain_text(style, token):
    proc = _processor(style)
    normal = proc(['the big circle'], num_tiles=2)['input_ids']
    tricky = proc([f'the {token} circle'], num_tiles=2)['input_ids']
    for special in ('[SEG]', '[REJ]', IM_END_TOKEN, IMG_CONTEXT_TOKEN,
                    '<|im_start|>'):
        assert _count(proc, tricky, special) == _count(proc, normal,
                                                       special), special
    # the mask is still read from the answer's one [SEG]
    assert _count(proc, tricky, '[SEG]') == 1


def test_escaping_is_identity_on_ordinary_text():
    proc = _processor()
    text = 'the man [in red] on the left <b>'
    assert escape_special_tokens(text, proc.special_texts) == text
    assert escape_special_tokens('a [SEG] b', ['[SEG]']) == \
        'a [\u200bSEG] b'


def test_blank_phrase_is_refused_with_the_sample_name():
    proc = _processor()
    with pytest.raises(ValueError, match=r'\[1\] of img_7.jpg are empty'):
        proc(['a cat', '  '], name='img_7.jpg')


def test_over_long_phrase_names_the_context_length():
    proc = _processor(max_length=300)
    with pytest.raises(ValueError, match="model's context of 300 tokens"):
        proc([' '.join(['word'] * 2000)], name='phrase 0')


def test_backbone_context_is_the_llm_positions():
    from mmengine.config import Config

    from mmrefseg.registry import MODELS
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile('configs/self1e/self1e_tiny_synth.py')
    backbone = MODELS.build(cfg.model.backbone)
    assert backbone.processor.max_length == \
        backbone.hf.config.text_config.max_position_embeddings
