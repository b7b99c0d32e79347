# Copyright (c) mmrefseg contributors.
import math

import pytest
import torch
import torch.nn.functional as F

from mmrefseg.models.heads import LLMStateAuxHead


def tiny_head(**kwargs) -> LLMStateAuxHead:
    torch.manual_seed(0)
    head = LLMStateAuxHead(**{**dict(llm_channels=16, embed_dims=8),
                              **kwargs})
    head.init_weights()
    return head


def test_logits_are_the_scaled_dot_product_on_the_finer_grid():
    head = tiny_head(upsample=2)
    states = torch.randn(3, 16, 4, 5)  # 3 images, LLM grid 4x5
    seg = torch.randn(2, 16)
    seg_to_image = torch.tensor([2, 0])
    logits = head(states, seg, seg_to_image)
    assert logits.shape == (2, 1, 8, 10)
    # By hand: cell (y, x) of image i gives sub-cell (a, b) the channels
    # [(a * 2 + b) * d ...] of image_proj in pixel_shuffle's layout.
    d = 8
    for q, i in enumerate(seg_to_image.tolist()):
        s = head.seg_proj(seg[q])
        for y, x, a, b in [(0, 0, 0, 0), (3, 4, 1, 1), (2, 1, 0, 1),
                           (1, 3, 1, 0)]:
            cell = head.image_proj(states[i, :, y, x])  # (4 * d)
            sub = cell.view(d, 2, 2)[:, a, b]
            want = sub @ s / math.sqrt(d) + head.bias
            torch.testing.assert_close(logits[q, 0, 2 * y + a, 2 * x + b],
                                       want, rtol=1e-5, atol=1e-5)


def test_bias_starts_at_the_prior_and_validation():
    head = tiny_head(mask_prior_prob=0.05)
    assert torch.sigmoid(head.bias).item() == pytest.approx(0.05)
    with pytest.raises(ValueError, match='mask_prior_prob'):
        LLMStateAuxHead(llm_channels=16, mask_prior_prob=1.5)
    with pytest.raises(ValueError, match='upsample'):
        LLMStateAuxHead(llm_channels=16, upsample=0)


def test_loss_values_by_hand_and_gradients_reach_the_states():
    head = tiny_head(upsample=1)
    states = torch.randn(2, 16, 2, 2, requires_grad=True)
    seg = torch.randn(2, 16)
    gts = [torch.zeros(4, 6), torch.ones(6, 4)]
    gts[0][:2, :3] = 1
    losses = head.loss(states, seg, torch.tensor([0, 1]), gts)
    assert set(losses) == {'loss_cross_entropy', 'loss_dice'}

    logits = head(states, seg, torch.tensor([0, 1]))
    bce, dice = 0., 0.
    for q, gt in enumerate(gts):
        up = F.interpolate(logits[q:q + 1], size=gt.shape, mode='bilinear',
                           align_corners=False)[0, 0]
        bce = bce + F.binary_cross_entropy_with_logits(up, gt)
        p = up.sigmoid()
        dice = dice + 1 - (2 * (p * gt).sum() + 1e-3) / (
            p.sum() + gt.sum() + 2e-3)
    torch.testing.assert_close(losses['loss_cross_entropy'], 2.0 * bce / 2)
    torch.testing.assert_close(losses['loss_dice'], 0.5 * dice / 2)

    sum(losses.values()).backward()
    assert states.grad.abs().sum() > 0


def test_a_matching_readout_scores_lower_than_a_swapped_one():
    """The loss must prefer logits that follow the GT (guards a sign or
    target mix-up): states whose first channel marks the object."""
    head = tiny_head(upsample=1, embed_dims=1, mask_prior_prob=None)
    with torch.no_grad():
        head.image_proj.weight.zero_()
        head.image_proj.weight[0, 0] = 1.0
        head.image_proj.bias.zero_()
        head.seg_proj.weight.zero_()
        head.seg_proj.bias.fill_(20.0)
        head.bias.fill_(-10.0)
    states = torch.zeros(1, 16, 4, 4)
    states[0, 0, :2, :2] = 1.0
    gt = torch.zeros(4, 4)
    gt[:2, :2] = 1
    right = head.loss(states, torch.zeros(1, 16), torch.tensor([0]), [gt])
    wrong = head.loss(states, torch.zeros(1, 16), torch.tensor([0]),
                      [1 - gt])
    assert sum(right.values()) < 0.01 < 1.0 < sum(wrong.values())


def test_learned_query_is_a_per_cell_linear_classifier():
    head = tiny_head(upsample=2, query='learned')
    assert not hasattr(head, 'seg_proj')
    states = torch.randn(2, 16, 3, 3)
    logits = head(states, None, torch.tensor([1, 1, 0]))
    assert logits.shape == (3, 1, 6, 6)
    torch.testing.assert_close(logits[0], logits[1])
    cell = head.image_proj(states[0, :, 2, 1]).view(8, 2, 2)[:, 1, 0]
    want = cell @ head.query_embed / math.sqrt(8) + head.bias
    torch.testing.assert_close(logits[2, 0, 5, 2], want)
    with pytest.raises(ValueError, match='query'):
        LLMStateAuxHead(llm_channels=16, query='cls')
