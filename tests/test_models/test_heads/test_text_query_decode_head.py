# Copyright (c) mmrefseg contributors.
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.structures import SegDataSample

from mmrefseg.models.heads import LightMaskDecoderHead, TextQueryDecodeHead
from mmrefseg.models.necks import DSFFNeck


def _head(**kwargs) -> TextQueryDecodeHead:
    cfg = dict(
        in_channels=[8, 16], in_index=[1, 2], text_channels=12,
        fusion=dict(type='mmrefseg.DSFFNeck', embed_dims=16, num_heads=2,
                    ffn_channels=16, dropout=0.0),
        mask_decoder=dict(type='mmrefseg.LightMaskDecoderHead', num_heads=2,
                          ffn_channels=16, dropout=0.0, patch_size=4,
                          mask_prior_prob=0.05))
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = TextQueryDecodeHead(**cfg)
    head.init_weights()
    return head


def _inputs(num_images=2, text_to_image=(0, 1, 1)):
    feats = [torch.randn(num_images, c, s, s)
             for c, s in ((4, 12), (8, 6), (16, 3))]
    return dict(img_feats=feats,
                text_embeds=torch.randn(len(text_to_image), 12),
                text_to_image=torch.tensor(text_to_image))


def test_is_an_mmseg_decode_head_with_explicit_widths():
    head = _head()
    assert isinstance(head, BaseDecodeHead)
    assert isinstance(head.fusion, DSFFNeck)
    assert isinstance(head.mask_decoder, LightMaskDecoderHead)
    assert head.fusion.img_llm_down.in_features == 16  # coarse level
    assert head.fusion.vit_proj.in_features == 8  # fine level
    assert head.mask_decoder.text_down.in_features == 12
    assert head.mask_decoder.embed_dims == 16
    assert head.num_classes == head.out_channels == 1
    assert not hasattr(head, 'conv_seg') and not hasattr(head, 'loss_decode')


def test_forward_reads_the_selected_levels_and_the_text():
    head = _head().eval()
    inputs = _inputs()
    with torch.no_grad():
        logits = head(inputs)
        assert logits.shape == (3, 1, 24, 24)  # 6x6 fine grid, patch 4
        # Same image, different text -> different masks; the level not in
        # in_index does not matter.
        assert not torch.allclose(logits[1], logits[2])
        inputs['img_feats'][0] = torch.randn_like(inputs['img_feats'][0])
        torch.testing.assert_close(head(inputs), logits)
        same = dict(inputs, text_embeds=inputs['text_embeds'][[1, 1, 1]])
        out = head(same)
        torch.testing.assert_close(out[1], out[2])
        assert head.predict(inputs, [{}], {}).shape == (3, 1, 24, 24)


def test_loss_uses_each_expressions_mask_and_backprops():
    head = _head()
    inputs = _inputs()
    inputs['text_embeds'].requires_grad_(True)
    samples = []
    for k, size in ((1, (20, 30)), (2, (25, 25))):
        sample = SegDataSample()
        masks = torch.zeros((k, ) + size, dtype=torch.uint8)
        masks[:, 5:15, 5:15] = 1
        sample.gt_sem_seg = PixelData(data=masks)
        samples.append(sample)
    losses = head.loss(inputs, samples, {})
    assert set(losses) == {'loss_focal', 'loss_dice'}
    sum(losses.values()).backward()
    assert inputs['text_embeds'].grad.abs().sum() > 0
    assert head.mask_decoder.text_down.weight.grad.abs().sum() > 0
    assert head.fusion.img_llm_down.weight.grad.abs().sum() > 0
    # One GT mask too few is an error, not a silent misalignment.
    samples[1].gt_sem_seg = PixelData(
        data=torch.zeros((1, 25, 25), dtype=torch.uint8))
    with pytest.raises(ValueError, match='3 predicted masks but 2'):
        head.loss(inputs, samples, {})


@pytest.mark.parametrize('bad, match', [
    (dict(in_channels=[8]), 'two levels'),
    (dict(fusion=dict(type='mmrefseg.DSFFNeck', vit_channels=9,
                      embed_dims=16)), 'fusion.vit_channels=9'),
    (dict(mask_decoder=dict(type='mmrefseg.LightMaskDecoderHead',
                            embed_dims=32)), 'mask_decoder.embed_dims=32'),
])
def test_contradicting_widths_are_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        _head(**bad)
