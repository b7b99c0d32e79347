# Copyright (c) mmrefseg contributors.
"""(image, phrases) with no annotation -> masks, through each method's tiny
config: the contract the inferencer builds on."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmrefseg.datasets.transforms import build_text_only_batch
from mmrefseg.registry import MODELS
from mmrefseg.structures import RefSegDataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TINY = {
    'mllmseg': 'configs/mllmseg/mllmseg_tiny_synth.py',
    'self1e': 'configs/self1e/self1e_tiny_synth.py',
    'text4seg': 'configs/text4seg/text4seg_tiny_synth.py',
}
PHRASES = ['the red circle', 'the biggest star']
GT_FIELDS = ('gt_masks', 'gt_bboxes', 'gt_no_target')


def _model(name):
    cfg = Config.fromfile(osp.join(ROOT, TINY[name]))
    if name == 'text4seg':
        # A random model rarely ends its answer: keep generation short.
        cfg.model.decode_head.max_new_tokens = 12
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model).eval()


def _image(h=37, w=53):
    return np.random.RandomState(0).randint(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize('name', sorted(TINY))
def test_predict_from_an_image_array_and_two_phrases(name):
    cfg, model = _model(name)
    batch = build_text_only_batch(cfg, _image(), PHRASES)
    assert len(batch['data_samples']) == 2
    for sample, phrase in zip(batch['data_samples'], PHRASES):
        assert isinstance(sample, RefSegDataSample)
        assert sample.texts == [phrase]
        assert not any(f in sample for f in GT_FIELDS)
    with torch.no_grad():
        preds = model.test_step(batch)
    assert len(preds) == 2
    for pred, phrase in zip(preds, PHRASES):
        assert pred.texts == [phrase]
        assert pred.pred_masks.shape == (1, 37, 53)
        assert pred.pred_masks.dtype == torch.bool
        assert pred.pred_probs.shape == (1, 37, 53)
        assert pred.pred_probs.dtype == torch.float32
        assert 0 <= float(pred.pred_probs.min()) <= \
            float(pred.pred_probs.max()) <= 1
        assert pred.pred_no_target.shape == (1, )
        assert pred.pred_no_target.dtype == torch.bool
        assert torch.equal(pred.pred_sem_seg.data.bool(), pred.pred_masks)
        if name == 'text4seg':
            assert isinstance(pred.generated_texts[0], str)
            assert len(pred.parse_status) == 1
            # A mask decoded from text is all or nothing per pixel.
            assert torch.equal(pred.pred_probs.bool(), pred.pred_masks)
        else:
            assert 'generated_texts' not in pred
    if name != 'text4seg':
        # The phrases' masks do not depend on being asked together or not,
        # per phrase: each conversation is one phrase here.
        q = [p.metainfo['question'] for p in preds]
        assert q[0] != q[1] and PHRASES[0] in q[0] and PHRASES[1] in q[1]


@pytest.mark.parametrize('name', ['mllmseg', 'self1e'])
def test_one_conversation_with_both_phrases(name, tmp_path):
    cfg, model = _model(name)
    path = str(tmp_path / 'img.png')
    image = _image(20, 30)
    mmcv.imwrite(image[..., ::-1], path)  # an RGB array saved as BGR file
    batch = build_text_only_batch(cfg, path, PHRASES,
                                  grouping='image_one_prompt')
    sample = batch['data_samples'][0]
    assert sample.texts == PHRASES
    assert sample.metainfo['img_path'] == path
    assert np.array_equal(batch['inputs']['image'][0], image)
    with torch.no_grad():
        pred = model.test_step(batch)[0]
    assert pred.pred_masks.shape == (2, 20, 30)
    assert pred.pred_no_target.shape == (2, )


def test_text4seg_needs_one_phrase_per_conversation():
    cfg, _ = _model('text4seg')
    with pytest.raises(ValueError, match='one expression'):
        build_text_only_batch(cfg, _image(), PHRASES,
                              grouping='image_one_prompt')
    # Grouped for speed, each phrase is its own question.
    batch = build_text_only_batch(cfg, _image(), PHRASES, grouping='image')
    questions = batch['data_samples'][0].metainfo['question']
    assert len(questions) == 2
    assert all(p in q for p, q in zip(PHRASES, questions))


def test_bad_inputs_are_named():
    cfg = Config.fromfile(osp.join(ROOT, TINY['mllmseg']))
    with pytest.raises(ValueError, match='uint8'):
        build_text_only_batch(cfg, _image().astype(np.float32), PHRASES)
    with pytest.raises(ValueError, match='phrases'):
        build_text_only_batch(cfg, _image(), ['  '])
    with pytest.raises(ValueError, match='grouping'):
        build_text_only_batch(cfg, _image(), PHRASES, grouping='x')
