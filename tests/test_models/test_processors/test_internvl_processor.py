# Copyright (c) mmrefseg contributors.
"""InternVLProcessor: the model-side conversation of a sample."""
import numpy as np
import pytest
import torch

from mmrefseg.models.processors import InternVLProcessor, count_slots
from mmrefseg.models.processors.prompts import (
    mllmseg_paper_eval_prompt,
    mllmseg_prompt,
)
from mmrefseg.utils.tokenizer import build_tokenizer

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _processor(**kw) -> InternVLProcessor:
    return InternVLProcessor(build_tokenizer(TOK, ['[SEG]', '[REJ]']),
                             num_image_tokens=4, **kw)


def test_labels_cover_only_the_answer():
    proc = _processor()
    tok = proc.tokenizer
    out = proc(['the red circle'], no_target=[False])
    ids, labels = out['input_ids'].numpy(), out['labels'].numpy()
    assert out['input_ids'].dtype == torch.long
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
    proc = _processor(question_first=True)
    out = proc(['the red circle'])
    prompt = proc.tokenizer.decode(out['input_ids'][:out['prompt_length']])
    assert prompt == ('<|im_start|>user\nCan you segment the red circle in '
                      'this image?\n<img>' + '<IMG_CONTEXT>' * 4 +
                      '</img><|im_end|>\n<|im_start|>assistant\n')
    # Same answer and labels as the default order.
    default = _processor()(['the red circle'])
    n = len(out['input_ids']) - out['prompt_length']
    assert torch.equal(out['labels'][-n:], default['labels'][-n:])
    assert sorted(out['input_ids'].tolist()) == sorted(
        default['input_ids'].tolist())


def test_image_tokens_scale_with_tiles_and_system_turn():
    proc = _processor(system_message='You are a helpful assistant.')
    ctx = proc.tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
    out = proc(['a'], num_tiles=3)
    assert int((out['input_ids'] == ctx).sum()) == 12
    assert proc.tokenizer.decode(out['input_ids'][:3]).startswith(
        '<|im_start|>system')


def test_training_rejects_no_target_and_randomises_templates():
    proc = _processor()
    seg = proc.tokenizer.convert_tokens_to_ids('[SEG]')
    rej = proc.tokenizer.convert_tokens_to_ids('[REJ]')
    answers = set()
    for seed in range(20):
        out = proc(['the star', 'the blue one'], no_target=[False, True],
                   training=True, seed=seed)
        answers.add(out['answer'].split(' ')[0])
        assert count_slots(out['answer']) == ['[SEG]', '[REJ]']
        assert int((out['input_ids'] == seg).sum()) == 1
        assert int((out['input_ids'] == rej).sum()) == 1
    assert len(answers) > 1
    # The seed decides the templates, as the old pipeline transform drew
    # them: default_rng(seed).
    again = proc(['the star', 'the blue one'], no_target=[False, True],
                 training=True, seed=7)
    rng = np.random.default_rng(7)
    assert (again['question'], again['answer']) == mllmseg_prompt(
        ['the star', 'the blue one'], [False, True], rng)
    # At test the answer is teacher-forced with [SEG] everywhere, unless
    # the GT answer is asked for (MLLMSeg's GRES paper protocol).
    out = proc(['the star', 'the blue one'], no_target=[False, True])
    assert count_slots(out['answer']) == ['[SEG]', '[SEG]']
    gt = _processor(test_prompt_style='mllmseg_paper_eval',
                    test_reject_no_target=True)
    out = gt(['the star', 'the blue one'], no_target=[False, True])
    assert out['answer'] == 'Sure,the star:[SEG], the blue one:[REJ].'
    # ... and the training prompt keeps the training style.
    out = gt(['the star'], no_target=[False], training=True, seed=0)
    assert out['question'] != mllmseg_paper_eval_prompt(['the star'],
                                                        [False])[0]


def test_pipeline_answer_style_uses_the_given_texts():
    proc = _processor(prompt_style='answer')
    out = proc(['x'], question='Q?', answer='A.')
    assert (out['question'], out['answer']) == ('Q?', 'A.')
    with pytest.raises(ValueError, match='x.jpg'):
        proc(['x'], name='image x.jpg')


def test_too_long_conversation_names_the_image():
    proc = _processor(max_length=10)
    with pytest.raises(ValueError, match='x.jpg'):
        proc(['the red circle'], name='image x.jpg (ref ids [1])')


def test_unknown_prompt_style():
    with pytest.raises(KeyError, match='nope'):
        _processor(prompt_style='nope')


def test_stop_ids_and_answer_decoding():
    proc = _processor()
    tok = proc.tokenizer
    im_end = tok.convert_tokens_to_ids('<|im_end|>')
    assert im_end in proc.stop_token_ids
    body = tok('the star', add_special_tokens=False).input_ids
    pad = proc.pad_token_id
    rows = torch.tensor([body + [im_end, pad], body + [pad, pad]])
    assert proc.decode_answers(rows) == ['the star', 'the star']
    counts = proc.newline_counts()
    assert counts.shape == (len(tok), )
    assert int(counts[tok('\n', add_special_tokens=False).input_ids[0]]) == 1


def test_prompt_texts():
    q, a = mllmseg_prompt(['The Red circle.', 'star'], [False, True], None)
    assert q == 'Can you segment the red circle, star in this image?'
    assert a == 'Sure, they are The Red circle:[SEG], star:[REJ].'
    q, a = mllmseg_paper_eval_prompt(['A b', 'c'], [False, False])
    assert q == ' What are a b, cin this image? Please output segmentation ' \
        'masks.'
    assert a == 'Sure,a b:[SEG], c:[SEG].'


def test_fixed_templates_in_training_when_asked():
    proc = _processor(random_templates=False)
    seen = {tuple(proc(['the red circle'], no_target=[False], training=True,
                       seed=s)['input_ids'].tolist()) for s in range(8)}
    assert len(seen) == 1
    evaluation = proc(['the red circle'], no_target=[False])['input_ids']
    assert seen == {tuple(evaluation.tolist())}
    # the GT [REJ] is still written in training
    rej = proc(['a unicorn'], no_target=[True], training=True)['answer']
    assert '[REJ]' in rej
    drawn = {tuple(_processor()(['the red circle'], no_target=[False],
                                training=True, seed=s)['input_ids'].tolist())
             for s in range(8)}
    assert len(drawn) > 1
