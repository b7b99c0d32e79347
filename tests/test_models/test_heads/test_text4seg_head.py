# Copyright (c) mmrefseg contributors.
"""Text4SegHead inside RefSegmentor on the synthetic dataset."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmrefseg.codecs.rrle import build_answer
from mmrefseg.models.heads import Text4SegHead
from mmrefseg.models.utils import LineBudget
from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
GRID = 8


def _pipeline(test_mode: bool):
    return [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMasks'),
        dict(type='InternVLImageTransform', image_size=56),
        dict(type='Text4SegAnswer', grid_size=GRID, test_mode=test_mode),
        dict(type='PackRefSegInputs'),
    ]


def _dataset(root, split, test_mode, **kw):
    return DATASETS.build(
        dict(type='RefCOCODataset', data_root=root,
             dataset_name='synthrefcoco', split=split, test_mode=test_mode,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=_pipeline(test_mode), **kw))


@pytest.fixture
def model(tiny_backbone_cfg):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='RefSegmentor',
        data_preprocessor=dict(type='RefSegDataPreProcessor'),
        backbone=dict(tiny_backbone_cfg, extra_special_tokens=(),
                      processor=dict(prompt_style='answer')),
        decode_head=dict(type='Text4SegHead', grid_size=GRID,
                         max_new_tokens=12)))


def _generate_texts(model, inputs):
    """The segmentor's generation with the head's settings, decoded."""
    _, new = model.generate_answers(inputs,
                                    **model.decode_head.generation_cfg)
    return model.backbone.processor.decode_answers(new)


def _one_by_one(model, samples):
    """Each sample's generated answer in a batch of its own."""
    return [
        _generate_texts(
            model,
            model.data_preprocessor(pseudo_collate([s]), False)['inputs'])[0]
        for s in samples
    ]


def _stub_generation(model, answers):
    """Make the backbone 'generate' the given answers (+ end of turn)."""
    tok = model.backbone.tokenizer
    end = tok.convert_tokens_to_ids('<|im_end|>')
    rows = [tok(a, add_special_tokens=False).input_ids + [end, 7, 7]
            for a in answers]
    length = max(len(r) for r in rows)
    new = torch.full((len(rows), length), tok.pad_token_id)
    for i, r in enumerate(rows):
        new[i, :len(r)] = torch.tensor(r)
    calls = []

    def generate(pixel_values, input_ids, attention_mask, **kwargs):
        calls.append(dict(input_ids=input_ids, mask=attention_mask,
                          kwargs=kwargs))
        return new

    model.backbone.generate = generate
    return calls


def test_training_is_next_token_loss_on_the_answer(model, synthetic_root):
    train = _dataset(synthetic_root, 'train', False,
                     max_expressions_per_sample=2)
    batch = pseudo_collate([train[i] for i in range(2)])
    data = model.data_preprocessor(batch, True)
    for sample in data['data_samples']:
        assert sample.gt_masks.shape[0] == 1  # one expression kept
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_lm'}
    assert torch.isfinite(losses['loss_lm'])
    # A few steps on one batch: the answer is learnable, the loss falls.
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(6):
        loss = model(**data, mode='loss')['loss_lm']
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.8 * first


def test_predict_end_to_end_generates_and_parses(model, synthetic_root):
    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[i] for i in range(2)]
    data = model.data_preprocessor(pseudo_collate(samples), False)
    with torch.no_grad():
        preds = model(**data, mode='predict')
    for pred, sample in zip(preds, samples):
        gt = sample['data_samples'].gt_masks
        assert pred.pred_masks.shape == gt.shape  # [1, H, W]
        assert pred.pred_masks.dtype == torch.bool
        assert pred.pred_sem_seg.data.dtype == torch.uint8
        assert len(pred.generated_texts) == 1
        assert isinstance(pred.generated_texts[0], str)
        assert len(pred.parse_status) == 1
        # 12 random tokens are no answer: the parser says what went wrong.
        assert pred.parse_status[0] != 'ok'
        assert pred.pred_no_target.tolist() == [
            not bool(pred.pred_masks.any())]


def test_predict_paints_the_parsed_grid(model, synthetic_root):
    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[0], val[1]]
    grid = np.zeros((GRID, GRID), bool)
    grid[2:5, 1:3] = True
    text = samples[0]['data_samples'].texts[0]
    answers = [build_answer(text, grid), build_answer('x', grid * False)]
    calls = _stub_generation(model, answers)
    data = model.data_preprocessor(pseudo_collate(samples), False)
    with torch.no_grad():
        preds = model(**data, mode='predict')
    # Prompts are handed over left-padded and without the GT answer, and
    # generation stops at the end of the turn.
    ids, mask = calls[0]['input_ids'], calls[0]['mask']
    for b, n in enumerate(data['inputs']['prompt_lengths']):
        assert torch.equal(ids[b, ids.shape[1] - n:],
                           data['inputs']['input_ids'][b, :n])
        assert int(mask[b].sum()) == n
    assert calls[0]['kwargs']['max_new_tokens'] == 12
    tok = model.backbone.tokenizer
    assert tok.convert_tokens_to_ids('<|im_end|>') in \
        calls[0]['kwargs']['eos_token_id']

    h, w = preds[0].metainfo['ori_shape']
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(grid).float()[None, None], size=(h, w),
        mode='nearest')[0, 0].to(torch.uint8)
    assert torch.equal(preds[0].pred_sem_seg.data[0], expected)
    assert torch.equal(preds[0].pred_masks[0], expected.bool())
    assert preds[0].parse_status == ['ok']
    assert preds[0].pred_no_target.tolist() == [False]
    assert preds[0].generated_texts == [answers[0]]
    # An all-'others' answer is a no-target prediction.
    assert not preds[1].pred_masks.any()
    assert preds[1].pred_no_target.tolist() == [True]
    assert preds[1].parse_status == ['ok']


def test_broken_answers_are_repaired_and_reported(model, synthetic_root):
    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    # Truncated in row 3, never closed.
    cut = "Sure:\n<seg>others *8\n others *8\n others *3| dog *5\n oth"
    _stub_generation(model, [cut, 'no mask here'])
    data = model.data_preprocessor(pseudo_collate([val[0], val[1]]), False)
    with torch.no_grad():
        preds = model(**data, mode='predict')
    assert preds[0].parse_status == ['truncated']
    assert preds[0].pred_no_target.tolist() == [False]
    assert preds[1].parse_status == ['no_seg_tag']
    assert preds[1].pred_no_target.tolist() == [True]


def test_batched_generation_matches_one_by_one(model, synthetic_root):
    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[i] for i in range(3)]
    head = model.decode_head
    head.max_new_tokens = 6
    batch = model.data_preprocessor(pseudo_collate(samples), False)
    assert len(set(batch['inputs']['prompt_lengths'])) > 1  # left padding
    together = _generate_texts(model, batch['inputs'])
    assert together == _one_by_one(model, samples)


def test_bidirectional_image_in_training_and_generation(model,
                                                        synthetic_root):
    """``bidirectional_image=True`` changes the training forward and the
    generation prefill alike; left-padded batches still answer as one by
    one."""
    train = _dataset(synthetic_root, 'train', False)
    data = model.data_preprocessor(
        pseudo_collate([train[i] for i in range(2)]), True)
    head = model.decode_head
    assert head.llm_attention == 'causal'
    causal = float(model(**data, mode='loss')['loss_lm'])
    head.bidirectional_image = True
    assert head.llm_attention == 'image_bidirectional'
    assert float(model(**data, mode='loss')['loss_lm']) != pytest.approx(
        causal, abs=1e-6)

    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[i] for i in range(3)]
    head.max_new_tokens = 6
    batch = model.data_preprocessor(pseudo_collate(samples), False)
    together = _generate_texts(model, batch['inputs'])
    assert together == _one_by_one(model, samples)
    head.bidirectional_image = False
    assert _generate_texts(model, batch['inputs']) != together
    head.bidirectional_image = True
    calls = _stub_generation(model, ['others *8'] * 3)
    model(**batch, mode='predict')
    assert calls[0]['kwargs']['llm_attention'] == 'image_bidirectional'


def test_grid_upsampling_on_non_square_images():
    head = Text4SegHead(grid_size=(2, 3))
    grid = torch.tensor([[1, 0, 0], [0, 0, 1]], dtype=torch.bool)
    mask = head.grid_to_mask(grid, (4, 7))
    # Legacy nearest: source index floor(dst * in / out).
    cols = [int(np.floor(x * 3 / 7)) for x in range(7)]
    expected = torch.stack([grid[y // 2, cols] for y in range(4)])
    assert torch.equal(mask, expected)
    bilinear = Text4SegHead(grid_size=(2, 3), upsample_mode='bilinear')
    assert bilinear.grid_to_mask(grid, (4, 7)).shape == (4, 7)
    with pytest.raises(ValueError, match='upsample_mode'):
        Text4SegHead(upsample_mode='bicubic')


def test_one_expression_per_conversation(model, synthetic_root):
    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    sample = val[0]
    sample['data_samples'].texts = ['a', 'b']
    _stub_generation(model, ['x'])
    data = model.data_preprocessor(pseudo_collate([sample]), False)
    with pytest.raises(ValueError, match='one expression'):
        model(**data, mode='predict')


def test_strict_label_keeps_only_the_query():
    head = Text4SegHead(grid_size=(1, 4), strict_label=True)
    text = '<seg>red *1| blue *2| others *1\n</seg>'
    result = head.decode_texts([text], ['blue'])[0]
    assert result.grid.tolist() == [[False, True, True, False]]
    assert 'unknown_label' in result.repairs
    loose = Text4SegHead(grid_size=(1, 4)).decode_texts([text], ['blue'])[0]
    assert loose.grid.tolist() == [[True, True, True, False]]


def test_line_budget_stops_runaway_rows(model, synthetic_root):
    table = torch.tensor([0, 1, 2, 0])  # line breaks of tokens 0..3
    budget = LineBudget(table, prompt_length=2, max_lines=3)
    ids = torch.tensor([[1, 1, 1, 0, 1], [2, 2, 2, 1, 0], [3, 3, 0, 0, 0]])
    assert budget(ids).tolist() == [False, True, False]
    # A model that writes nothing but line breaks is cut after max_lines.
    from transformers import LogitsProcessor, LogitsProcessorList
    tok = model.backbone.tokenizer
    newline = tok('\n', add_special_tokens=False).input_ids[0]

    class OnlyNewlines(LogitsProcessor):

        def __call__(self, input_ids, scores):
            forced = torch.full_like(scores, -1e4)
            forced[:, newline] = 0.
            return forced

    model.eval()
    head = model.decode_head
    head.max_new_tokens, head.max_lines = 40, 3
    head.generation_kwargs = dict(
        logits_processor=LogitsProcessorList([OnlyNewlines()]))
    val = _dataset(synthetic_root, 'val', True)
    data = model.data_preprocessor(pseudo_collate([val[0], val[1]]), False)
    assert _generate_texts(model, data['inputs']) == ['\n' * 3] * 2


def test_learned_query_auxiliary_head_trains_the_image_states(
        tiny_backbone_cfg, synthetic_root):
    """Text4Seg has no [SEG]: a learned-query auxiliary head scores each
    conversation's image states against its one GT mask."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='RefSegmentor',
        data_preprocessor=dict(type='RefSegDataPreProcessor'),
        backbone=dict(tiny_backbone_cfg, extra_special_tokens=(),
                      processor=dict(prompt_style='answer')),
        decode_head=dict(type='Text4SegHead', grid_size=GRID),
        auxiliary_head=dict(type='LLMStateAuxHead', query='learned',
                            embed_dims=16)))
    train = _dataset(synthetic_root, 'train', False)
    data = model.data_preprocessor(
        pseudo_collate([train[i] for i in range(3)]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_lm', 'aux.loss_cross_entropy',
                           'aux.loss_dice'}
    # The same head by hand on the global views and GT masks.
    with torch.no_grad():
        out = model.extract_feat(data['inputs'])
        want = model.auxiliary_head.loss(
            out.llm_image_states, None, torch.arange(3),
            [s.gt_masks[0] for s in data['data_samples']])
    for key, value in want.items():
        torch.testing.assert_close(losses['aux.' + key], value)
    losses['aux.loss_dice'].backward()
    llm_grad = [p.grad for n, p in model.backbone.named_parameters()
                if '.language_model.' in n and p.grad is not None]
    assert llm_grad and sum(g.abs().sum() for g in llm_grad) > 0

    sample = data['data_samples'][1]
    sample.gt_masks = sample.gt_masks.repeat(2, 1, 1)
    with pytest.raises(ValueError, match=r'one expression per conversation'):
        model(**data, mode='loss')
