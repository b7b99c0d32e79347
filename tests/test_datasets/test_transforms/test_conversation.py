# Copyright (c) mmrefseg contributors.
import numpy as np
import pytest

from mmrefseg.datasets.prompts import (
    count_slots,
    mllmseg_paper_eval_prompt,
    mllmseg_prompt,
)
from mmrefseg.datasets.transforms import BuildConversation
from mmrefseg.utils.tokenizer import build_tokenizer

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _results(texts, no_target, tiles=1):
    return dict(texts=texts, no_target=np.array(no_target), num_tiles=tiles,
                img_path='x.jpg', ref_ids=[1] * len(texts))


def test_labels_cover_only_the_answer():
    tok = build_tokenizer(TOK, ['[SEG]', '[REJ]'])
    t = BuildConversation(TOK, num_image_tokens=4, test_mode=True)
    out = t(_results(['the red circle'], [False]))
    ids, labels = out['input_ids'], out['labels']
    assert ids.shape == labels.shape
    answer_pos = np.nonzero(labels != -100)[0]
    # The answer is one contiguous block that starts right after the prompt
    # and ends with <|im_end|>; the trailing newline is not supervised.
    assert answer_pos[0] == out['prompt_length']
    assert np.all(np.diff(answer_pos) == 1)
    assert ids[answer_pos[-1]] == tok.convert_tokens_to_ids('<|im_end|>')
    assert answer_pos[-1] == len(ids) - 2
    assert np.array_equal(labels[answer_pos], ids[answer_pos])
    decoded = tok.decode(ids[answer_pos[:-1]])
    assert decoded == out['answer'] == 'Sure, they are the red circle:[SEG].'
    prompt = tok.decode(ids[:out['prompt_length']])
    assert prompt == ('<|im_start|>user\n<img>' + '<IMG_CONTEXT>' * 4 +
                      '</img>\nCan you segment the red circle in this image?'
                      '<|im_end|>\n<|im_start|>assistant\n')


def test_question_first_puts_the_expression_before_the_image():
    tok = build_tokenizer(TOK, ['[SEG]', '[REJ]'])
    t = BuildConversation(TOK, num_image_tokens=4, test_mode=True,
                          question_first=True)
    out = t(_results(['the red circle'], [False]))
    prompt = tok.decode(out['input_ids'][:out['prompt_length']])
    assert prompt == ('<|im_start|>user\nCan you segment the red circle in '
                      'this image?\n<img>' + '<IMG_CONTEXT>' * 4 +
                      '</img><|im_end|>\n<|im_start|>assistant\n')
    # Same answer and labels as the default order.
    default = BuildConversation(TOK, num_image_tokens=4, test_mode=True)(
        _results(['the red circle'], [False]))
    n = len(out['input_ids']) - out['prompt_length']
    assert np.array_equal(out['labels'][-n:], default['labels'][-n:])
    assert sorted(out['input_ids']) == sorted(default['input_ids'])


def test_image_tokens_scale_with_tiles_and_system_turn():
    tok = build_tokenizer(TOK, ['[SEG]', '[REJ]'])
    ctx = tok.convert_tokens_to_ids('<IMG_CONTEXT>')
    t = BuildConversation(TOK, num_image_tokens=4, test_mode=True,
                          system_message='You are a helpful assistant.')
    out = t(_results(['a'], [False], tiles=3))
    assert int((out['input_ids'] == ctx).sum()) == 12
    assert tok.decode(out['input_ids'][:3]).startswith('<|im_start|>system')


def test_training_rejects_no_target_and_randomises_templates():
    tok = build_tokenizer(TOK, ['[SEG]', '[REJ]'])
    t = BuildConversation(TOK, num_image_tokens=4)
    np.random.seed(0)
    answers = set()
    for _ in range(20):
        out = t(_results(['the star', 'the blue one'], [False, True]))
        answers.add(out['answer'].split(' ')[0])
        assert count_slots(out['answer']) == ['[SEG]', '[REJ]']
        seg = tok.convert_tokens_to_ids('[SEG]')
        rej = tok.convert_tokens_to_ids('[REJ]')
        assert int((out['input_ids'] == seg).sum()) == 1
        assert int((out['input_ids'] == rej).sum()) == 1
    assert len(answers) > 1
    # At test the answer is teacher-forced with [SEG] everywhere.
    test = BuildConversation(TOK, num_image_tokens=4, test_mode=True)
    out = test(_results(['the star', 'the blue one'], [False, True]))
    assert count_slots(out['answer']) == ['[SEG]', '[SEG]']


def test_too_long_conversation_names_the_image():
    t = BuildConversation(TOK, num_image_tokens=4, max_length=10)
    with pytest.raises(ValueError, match='x.jpg'):
        t(_results(['the red circle'], [False]))


def test_prompt_texts():
    q, a = mllmseg_prompt(['The Red circle.', 'star'], [False, True], None)
    assert q == 'Can you segment the red circle, star in this image?'
    assert a == 'Sure, they are The Red circle:[SEG], star:[REJ].'
    q, a = mllmseg_paper_eval_prompt(['A b', 'c'], [False, False])
    assert q == ' What are a b, cin this image? Please output segmentation ' \
        'masks.'
    assert a == 'Sure,a b:[SEG], c:[SEG].'
