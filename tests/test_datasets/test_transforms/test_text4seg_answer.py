# Copyright (c) mmrefseg contributors.
import numpy as np
import pytest

from mmrefseg.codecs import decode_answer, mask_to_grid
from mmrefseg.datasets.transforms import Text4SegAnswer
from mmrefseg.datasets.transforms.text4seg_answer import (
    TEXT4SEG_ANSWERS,
    TEXT4SEG_QUESTIONS,
)
from mmrefseg.models.processors import InternVLProcessor
from mmrefseg.utils.tokenizer import build_tokenizer

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _results(num: int = 1, h: int = 30, w: int = 40) -> dict:
    """K expressions, expression k owning a distinct square."""
    masks = np.zeros((num, h, w), np.uint8)
    for k in range(num):
        masks[k, 2 + 5 * k:8 + 5 * k, 3 + 6 * k:12 + 6 * k] = 1
    return dict(
        img_path='x.jpg', gt_masks=masks,
        gt_bboxes=np.arange(num * 4, dtype=np.float32).reshape(num, 4),
        no_target=np.zeros(num, bool), texts=[f'shape {k}' for k in
                                              range(num)],
        ref_ids=list(range(10, 10 + num)),
        sent_ids=list(range(20, 20 + num)),
        expressions=[dict(text=f'shape {k}') for k in range(num)])


def test_test_mode_uses_first_templates_and_the_reference_format():
    out = Text4SegAnswer(grid_size=4, test_mode=True)(_results())
    assert out['question'] == 'Please segment only the shape 0 in the image.'
    grid = mask_to_grid(out['gt_masks'][0], (4, 4))
    assert np.array_equal(out['answer_grid'], grid.astype(np.uint8))
    assert out['answer_grid'].dtype == np.uint8
    assert out['answer'].startswith(
        "Sure, here is the segmentation mask for 'shape 0':\n<seg>")
    assert out['answer'].endswith('\n</seg>')
    result = decode_answer(out['answer'], (4, 4), label='shape 0')
    assert result.status == 'ok'
    assert np.array_equal(result.grid, grid)


def test_training_draws_every_template():
    np.random.seed(0)
    t = Text4SegAnswer(grid_size=4)
    questions, answers = set(), set()
    for _ in range(200):
        out = t(_results())
        questions.add(out['question'])
        answers.add(out['answer'].split('\n<seg>')[0])
    assert len(questions) == len(TEXT4SEG_QUESTIONS) == 6
    # Ten templates, one listed twice in the reference.
    assert len(answers) == len(set(TEXT4SEG_ANSWERS)) == 9
    assert "Where is 'shape 0' in this image? Please output segmentation " \
        'mask.' in questions


def test_training_keeps_one_expression_consistently():
    np.random.seed(1)
    t = Text4SegAnswer(grid_size=(6, 8))
    seen = set()
    for _ in range(30):
        out = t(_results(num=3))
        k = out['ref_ids'][0] - 10
        seen.add(k)
        assert out['texts'] == [f'shape {k}']
        assert out['sent_ids'] == [20 + k]
        assert out['expressions'] == [dict(text=f'shape {k}')]
        assert out['gt_masks'].shape == (1, 30, 40)
        assert out['gt_masks'][0].sum() == _results(3)['gt_masks'][k].sum()
        assert np.array_equal(out['gt_bboxes'][0],
                              np.arange(4 * k, 4 * k + 4))
        assert out['no_target'].shape == (1, )
        assert out['answer_grid'].shape == (6, 8)
        assert f"'shape {k}'" in out['answer'] or f'the shape {k}' in \
            out['answer']
    assert seen == {0, 1, 2}


def test_test_mode_refuses_several_expressions():
    with pytest.raises(ValueError, match='one expression per test sample'):
        Text4SegAnswer(test_mode=True)(_results(num=2))


def test_no_target_is_all_background():
    res = _results()
    res['gt_masks'][:] = 0
    res['no_target'][:] = True
    out = Text4SegAnswer(grid_size=3, test_mode=True)(res)
    assert out['answer'].endswith(
        '<seg>others *3\n others *3\n others *3\n</seg>')
    assert not out['answer_grid'].any()


def test_bad_templates_are_rejected():
    with pytest.raises(ValueError, match='placeholder'):
        Text4SegAnswer(question_templates=['no placeholder'])
    with pytest.raises(ValueError, match='positive'):
        Text4SegAnswer(grid_size=0)


def test_conversation_supervises_exactly_the_answer():
    res = _results()
    res['num_tiles'] = 1
    res = Text4SegAnswer(grid_size=4, test_mode=True)(res)
    tok = build_tokenizer(TOK, ())
    conv = InternVLProcessor(tok, num_image_tokens=4, prompt_style='answer')
    out = conv(res['texts'], question=res['question'], answer=res['answer'])
    supervised = out['input_ids'][out['labels'] != -100]
    assert tok.decode(supervised) == res['answer'] + '<|im_end|>'
    prompt = tok.decode(out['input_ids'][:out['prompt_length']])
    assert prompt.endswith('\nPlease segment only the shape 0 in the image.'
                           '<|im_end|>\n<|im_start|>assistant\n')


def test_inference_without_masks_still_builds_the_prompt():
    out = Text4SegAnswer(test_mode=True)(dict(texts=['a red star']))
    assert out['question'] == \
        'Please segment only the a red star in the image.'
    assert out['answer'] == \
        "Sure, here is the segmentation mask for 'a red star':"
    assert 'answer_grid' not in out


def test_full_descriptor_answers_decode_in_the_head():
    from mmrefseg.models.heads import Text4SegHead
    out = Text4SegAnswer(grid_size=4, answer_format='full',
                         test_mode=True)(_results())
    body = out['answer'].split('<seg>')[1]
    assert '\n' not in body and body.count('| ') == 15
    head = Text4SegHead(grid_size=4, answer_format='full')
    result = head.decode_texts([out['answer']])[0]
    assert result.status == 'ok'
    assert np.array_equal(result.grid, out['answer_grid'].astype(bool))
    assert 'full' in repr(Text4SegAnswer(answer_format='full'))
    with pytest.raises(ValueError, match='answer_format'):
        Text4SegAnswer(answer_format='irle')
    with pytest.raises(ValueError, match='answer_format'):
        Text4SegHead(answer_format='irle')
