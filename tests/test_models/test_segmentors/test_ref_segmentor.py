# Copyright (c) mmrefseg contributors.
"""RefSegmentor with the MLLMSeg neck/head on the synthetic dataset."""
import copy

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
NUM_IMAGE_TOKENS = 4  # 56 px tiles, patch 14, pixel shuffle 0.5


def _pipeline(test_mode: bool):
    return [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMasks'),
        dict(type='InternVLImageTransform', image_size=56),
        dict(type='BuildConversation', tokenizer=TOK,
             num_image_tokens=NUM_IMAGE_TOKENS, test_mode=test_mode),
        dict(type='PackRefSegInputs'),
    ]


def _dataset(root, split, test_mode, **kw):
    return DATASETS.build(
        dict(type='RefCOCODataset', data_root=root,
             dataset_name='synthrefcoco', split=split, test_mode=test_mode,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=_pipeline(test_mode), **kw))


@pytest.fixture
def segmentor_cfg(tiny_backbone_cfg):
    return dict(
        type='RefSegmentor',
        data_preprocessor=dict(type='RefSegDataPreProcessor'),
        backbone=tiny_backbone_cfg,
        neck=dict(type='DSFFNeck', embed_dims=32, num_heads=2,
                  ffn_channels=32, dropout=0.0),
        decode_head=dict(type='LightMaskDecoderHead', embed_dims=32,
                         num_heads=2, ffn_channels=32, dropout=0.0))


def test_widths_are_filled_from_backbone(segmentor_cfg):
    model = MODELS.build(segmentor_cfg)
    assert model.neck.img_llm_down.in_features == 64  # llm width
    assert model.decode_head.text_down.in_features == 64
    assert model.decode_head.conv1[0].out_channels == 14 * 14  # patch²


def test_loss_and_predict_on_synthetic_data(segmentor_cfg, synthetic_root):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg)
    train = _dataset(synthetic_root, 'train', False,
                     max_expressions_per_sample=3)
    batch = pseudo_collate([train[i] for i in range(4)])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_lm', 'loss_focal', 'loss_dice'}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.decode_head.conv2.weight.grad is not None
    assert model.backbone.hf.model.vision_tower.embeddings.patch_embeddings \
        .projection.weight.grad.abs().sum() > 0

    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[i] for i in range(3)]
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(samples), False)
        preds = model(**data, mode='predict')
    for pred, sample in zip(preds, samples):
        gt = sample['data_samples'].gt_sem_seg.data
        assert pred.pred_sem_seg.data.shape == gt.shape  # [1, H, W]
        assert pred.seg_logits.data.shape == gt.shape
        assert pred.metainfo['pred_no_target'] == [False]
        probs = pred.seg_logits.data
        assert torch.equal(pred.pred_sem_seg.data.bool(), probs > 0.5)


def test_rej_slots_get_no_mask_loss(segmentor_cfg, synthetic_root):
    """A [REJ] expression contributes no mask to the loss, only text."""
    model = MODELS.build(segmentor_cfg)
    train = _dataset(synthetic_root, 'train', False)
    sample = copy.deepcopy(train[0])
    out = model.extract_feat(model.data_preprocessor(
        pseudo_collate([sample]), True)['inputs'])
    masks = model._gt_masks_for_seg_slots(out, [sample['data_samples']])
    assert len(masks) == 1
    # Same sample with its expression marked as no-target: [REJ] instead.
    from mmrefseg.datasets.transforms import BuildConversation
    conv = BuildConversation(TOK, NUM_IMAGE_TOKENS)
    res = conv(dict(texts=['x'], no_target=np.array([True]), num_tiles=1))
    sample['inputs']['input_ids'] = torch.from_numpy(res['input_ids'])
    sample['inputs']['labels'] = torch.from_numpy(res['labels'])
    out = model.extract_feat(model.data_preprocessor(
        pseudo_collate([sample]), True)['inputs'])
    assert model._gt_masks_for_seg_slots(out, [sample['data_samples']]) == []
    losses = model.loss(model.data_preprocessor(pseudo_collate([sample]),
                                                True)['inputs'],
                        [sample['data_samples']])
    assert float(losses['loss_mask']) == 0.0


def test_use_rej_empties_rejected_masks(segmentor_cfg, synthetic_root):
    val = _dataset(synthetic_root, 'val', True)
    for use_rej in (True, False):
        torch.manual_seed(0)
        model = MODELS.build(dict(segmentor_cfg,
                                  test_cfg=dict(use_rej=use_rej,
                                                threshold=-1.0))).eval()
        extract = model.extract_feat

        def prefers_rej(inputs):
            out = extract(inputs)
            out.slot_rej_score = torch.ones_like(out.slot_rej_score)
            return out

        model.extract_feat = prefers_rej
        data = model.data_preprocessor(pseudo_collate([val[0]]), False)
        with torch.no_grad():
            pred = model(**data, mode='predict')[0]
        # threshold -1 makes every pixel foreground unless rejected.
        assert pred.metainfo['pred_no_target'] == [use_rej]
        assert bool(pred.pred_sem_seg.data.any()) is (not use_rej)
