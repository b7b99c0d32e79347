# Copyright (c) mmrefseg contributors.
"""TextEncoderDecoder: an MMSeg ResNet + BERT + our DSFF/light decoder."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmseg.models.segmentors import EncoderDecoder

from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
SEGMENTOR = dict(
    type='mmrefseg.TextEncoderDecoder',
    data_preprocessor=dict(type='mmrefseg.ImageTextDataPreProcessor',
                           tokenizer=TOK),
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                  out_indices=(0, 1, 2, 3)),
    text_encoder=dict(
        type='mmrefseg.HFTextEncoder', tokenizer=TOK,
        config=dict(model_type='bert', hidden_size=16, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=32,
                    max_position_embeddings=32)),
    decode_head=dict(
        type='mmrefseg.TextQueryDecodeHead', in_channels=[16, 32],
        in_index=[1, 2],
        fusion=dict(type='mmrefseg.DSFFNeck', embed_dims=16, num_heads=2,
                    ffn_channels=16, dropout=0.0),
        mask_decoder=dict(type='mmrefseg.LightMaskDecoderHead', num_heads=2,
                          ffn_channels=16, dropout=0.0, patch_size=8,
                          mask_prior_prob=0.05)))
PIPELINE = [
    dict(type='mmrefseg.LoadRefImage'),
    dict(type='Resize', scale=(48, 32), keep_ratio=False),
    dict(type='mmrefseg.LoadRefMasks'),
    dict(type='mmrefseg.PackRefImageInputs'),
]


@pytest.fixture
def mmseg_scope():
    """Build under MMSeg's scope, as a plain MMSeg config would."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _batch(root, split, n, **kwargs):
    dataset = DATASETS.build(
        dict(type='mmrefseg.RefCOCODataset', data_root=root,
             dataset_name='synthrefcoco', split=split,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=PIPELINE, **kwargs))
    return pseudo_collate([dataset[i] for i in range(n)])


def _model():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(SEGMENTOR))
    model.init_weights()
    return model


def test_builds_as_an_mmseg_encoder_decoder(mmseg_scope):
    model = _model()
    assert isinstance(model, EncoderDecoder)
    # text_channels filled from the text encoder's width.
    assert model.decode_head.text_channels == 16
    assert model.decode_head.mask_decoder.text_down.in_features == 16


def test_train_step_reduces_loss_and_updates_every_part(
        mmseg_scope, synthetic_root):
    from mmengine.optim import OptimWrapper
    model = _model()
    data = _batch(synthetic_root, 'train', 3, max_expressions_per_sample=3)
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    before = {name: p.detach().clone()
              for name, p in model.named_parameters()}
    first = model.train_step(data, optim)
    assert {'decode.loss_focal', 'decode.loss_dice'} <= set(first)
    moved = {name.split('.')[0] for name, p in model.named_parameters()
             if not torch.equal(before[name], p.detach())}
    assert {'backbone', 'text_encoder', 'decode_head'} <= moved
    for _ in range(4):
        last = model.train_step(data, optim)
    assert last['loss'] < first['loss']


def test_predict_one_mask_per_expression_at_original_size(
        mmseg_scope, synthetic_root):
    model = _model().eval()
    data = _batch(synthetic_root, 'val', 2, test_mode=True,
                  test_grouping='image')
    with torch.no_grad():
        out = model.val_step(data)
    for sample, src in zip(out, data['data_samples']):
        k = len(src.metainfo['texts'])
        h, w = src.metainfo['ori_shape']
        assert k > 1
        assert sample.pred_sem_seg.data.shape == (k, h, w)
        assert sample.pred_sem_seg.data.dtype == torch.uint8
        probs = sample.seg_logits.data
        assert probs.shape == (k, h, w) and 0 <= probs.min() <= 1
        assert torch.equal(sample.pred_sem_seg.data, (probs > 0.5).to(
            torch.uint8))
        assert sample.metainfo['pred_no_target'] == [False] * k
    # The predictions are the resized forward logits of each query.
    with torch.no_grad():
        batch = model.data_preprocessor(copy.deepcopy(data))
        logits = model(batch['inputs'], batch['data_samples'], mode='tensor')
    q0 = len(data['data_samples'][0].metainfo['texts'])
    h, w = data['data_samples'][1].metainfo['ori_shape']
    expected = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(logits[q0:q0 + 1], size=(32, 48),
                                        mode='bilinear'),
        size=(h, w), mode='bilinear').sigmoid()[0, 0]
    torch.testing.assert_close(out[1].seg_logits.data[0], expected)


def test_tokenizer_mismatch_is_an_error(mmseg_scope):
    cfg = copy.deepcopy(SEGMENTOR)
    cfg['data_preprocessor']['tokenizer'] = dict(type='tiny_bpe',
                                                 vocab_size=600)
    with pytest.raises(ValueError, match='same tokenizer'):
        MODELS.build(cfg)
