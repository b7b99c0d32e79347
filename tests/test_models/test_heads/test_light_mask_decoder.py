# Copyright (c) mmrefseg contributors.
import math

import pytest
import torch
import torch.nn.functional as F

from mmrefseg.models.heads import LightMaskDecoderHead
from mmrefseg.models.losses import MaskFocalLoss
from mmrefseg.models.necks import DSFFNeck
from mmrefseg.registry import MODELS

# Released ``res_decoder.*`` keys owned by the head, with their 8B shapes
# (MLLMSeg InternVL2.5-8B checkpoint, d = 1024).
D, LLM_8B = 1024, 4096
RELEASED_HEAD_KEYS = {
    'text_down.weight': (D, LLM_8B),
    'text_down.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.self_attn.in_proj_weight': (3 * D, D),
    'ca_layer_vl.decoder.layers.0.self_attn.in_proj_bias': (3 * D, ),
    'ca_layer_vl.decoder.layers.0.self_attn.out_proj.weight': (D, D),
    'ca_layer_vl.decoder.layers.0.self_attn.out_proj.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.multihead_attn.in_proj_weight': (3 * D, D),
    'ca_layer_vl.decoder.layers.0.multihead_attn.in_proj_bias': (3 * D, ),
    'ca_layer_vl.decoder.layers.0.multihead_attn.out_proj.weight': (D, D),
    'ca_layer_vl.decoder.layers.0.multihead_attn.out_proj.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.linear1.weight': (D, D),
    'ca_layer_vl.decoder.layers.0.linear1.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.linear2.weight': (D, D),
    'ca_layer_vl.decoder.layers.0.linear2.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.norm1.weight': (D, ),
    'ca_layer_vl.decoder.layers.0.norm1.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.norm2.weight': (D, ),
    'ca_layer_vl.decoder.layers.0.norm2.bias': (D, ),
    'ca_layer_vl.decoder.layers.0.norm3.weight': (D, ),
    'ca_layer_vl.decoder.layers.0.norm3.bias': (D, ),
    'ca_layer_vl.decoder.norm.weight': (D, ),
    'ca_layer_vl.decoder.norm.bias': (D, ),
    'conv1.0.weight': (196, D, 3, 3),
    'conv1.0.bias': (196, ),
    'conv1.1.weight': (196, ),
    'conv1.1.bias': (196, ),
    'conv1.1.running_mean': (196, ),
    'conv1.1.running_var': (196, ),
    'conv1.1.num_batches_tracked': (),
    'conv2.weight': (1, 1, 5, 5),
    'conv2.bias': (1, ),
}
TINY = dict(
    llm_channels=128, embed_dims=32, num_heads=4, ffn_channels=48,
    patch_size=4)


def tiny_head(**kwargs) -> LightMaskDecoderHead:
    torch.manual_seed(0)
    head = LightMaskDecoderHead(**{**TINY, **kwargs})
    head.init_weights()
    return head.eval()


@pytest.mark.parametrize('llm_channels,expected', [(4096, 34_385_542),
                                                   (896, 27_831_942),
                                                   (2048, 30_191_238)])
def test_released_parameter_count(llm_channels, expected):
    with torch.device('meta'):
        neck = DSFFNeck(vit_channels=1024, llm_channels=llm_channels)
        head = LightMaskDecoderHead(llm_channels=llm_channels)
    total = sum(p.numel() for m in (neck, head) for p in m.parameters())
    assert total == expected


def test_released_layout_8b():
    with torch.device('meta'):
        neck = DSFFNeck(vit_channels=1024, llm_channels=LLM_8B)
        head = LightMaskDecoderHead(llm_channels=LLM_8B)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == RELEASED_HEAD_KEYS
    # The converter maps res_decoder.<k> to exactly one of neck/head.
    assert not set(neck.state_dict()) & set(head.state_dict())
    assert len(neck.state_dict()) + len(head.state_dict()) == 58


def test_shapes_and_empty_batch():
    head = MODELS.build(dict(type='LightMaskDecoderHead', **TINY))
    fused = torch.randn(2, 32, 6, 5)  # non-square
    seg = torch.randn(3, 128)
    out = head(fused, seg, torch.tensor([1, 0, 1]))
    assert out.shape == (3, 1, 24, 20)
    empty = head(fused, seg[:0], torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 1, 24, 20)
    losses = head.loss_by_feat(empty, [])
    assert set(losses) == {'loss_focal', 'loss_dice'}
    assert all(v.item() == 0 for v in losses.values())


def test_seg_to_image_is_honoured():
    head = tiny_head()
    fused = torch.randn(3, 32, 4, 3)
    seg = torch.randn(1, 128).expand(3, -1)  # same text for every query
    seg_to_image = torch.tensor([2, 0, 2])
    with torch.no_grad():
        out = head(fused, seg, seg_to_image)
        for q, i in enumerate(seg_to_image.tolist()):
            single = head(fused[i:i + 1], seg[q:q + 1], torch.tensor([0]))
            torch.testing.assert_close(out[q:q + 1], single)
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], out[1])


def test_pixel_shuffle_ordering():
    head = tiny_head()
    with torch.no_grad():  # conv2 := identity
        head.conv2.weight.zero_()
        head.conv2.weight[0, 0, 2, 2] = 1
        head.conv2.bias.zero_()
    captured = []
    head.conv1.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        out = head(torch.randn(1, 32, 3, 2), torch.randn(1, 128),
                   torch.tensor([0]))
    ch, p = captured[0][0], 4
    for i in range(3):
        for j in range(2):
            for a in range(p):
                for b in range(p):
                    assert out[0, 0, p * i + a, p * j + b] == ch[p * a + b, i,
                                                                 j]


def test_single_token_cross_attention_is_additive():
    """ca_layer_vl is the released post-norm layer with a dead softmax."""
    block = tiny_head().ca_layer_vl
    layer = block.decoder.layers[0]
    x, t = torch.randn(2, 12, 32), torch.randn(2, 1, 32)
    with torch.no_grad():
        attn = layer.multihead_attn
        w_v = attn.in_proj_weight[64:]
        b_v = attn.in_proj_bias[64:]
        text_bias = attn.out_proj(F.linear(t, w_v, b_v))  # (2, 1, 32)
        x1 = layer.norm1(x + layer.self_attn(x, x, x)[0])
        x2 = layer.norm2(x1 + text_bias)
        x3 = layer.norm3(x2 + layer.linear2(F.relu(layer.linear1(x2))))
        expected = block.decoder.norm(x3)
        torch.testing.assert_close(block(x, t), expected)


def focal_by_hand(z, y, legacy=False, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-z))
    p_t = p if y else 1 - p
    logit = p if legacy else z  # legacy: probability fed as a logit
    ce = math.log1p(math.exp(-logit)) if y else math.log1p(math.exp(logit))
    return (alpha if y else 1 - alpha) * (1 - p_t)**gamma * ce


def expected_losses(legacy):
    ln3 = math.log(3)
    z0, y0 = [0.0, ln3, -ln3, 2.0], [1, 1, 0, 0]
    focal0 = sum(focal_by_hand(z, y, legacy) for z, y in zip(z0, y0)) / 4
    p0 = [1 / (1 + math.exp(-z)) for z in z0]
    dice0 = 1 - (2 * (p0[0] + p0[1]) + 1) / (sum(p0) + 2 + 1)
    # query 1: constant logit -1 (stays constant when resized) on a 3x5 GT
    # with 4 foreground pixels
    p1 = 1 / (1 + math.exp(1))
    focal1 = (4 * focal_by_hand(-1.0, 1, legacy) +
              11 * focal_by_hand(-1.0, 0, legacy)) / 15
    dice1 = 1 - (2 * 4 * p1 + 1) / (15 * p1 + 4 + 1)
    return (focal0 + focal1) / 2, (dice0 + dice1) / 2


@pytest.mark.parametrize('legacy', [False, True])
def test_loss_values_by_hand(legacy):
    head = tiny_head(legacy_double_sigmoid=legacy)
    ln3 = math.log(3)
    logits = torch.tensor([[[[0.0, ln3], [-ln3, 2.0]]],
                           [[[-1.0, -1.0], [-1.0, -1.0]]]])
    gt0 = torch.tensor([[1, 1], [0, 0]], dtype=torch.uint8)
    gt1 = torch.zeros(3, 5, dtype=torch.uint8)
    gt1[1, 1:5] = 1
    losses = head.loss_by_feat(logits, [gt0, gt1])
    focal, dice = expected_losses(legacy)
    assert losses['loss_focal'].item() == pytest.approx(focal, rel=1e-5)
    assert losses['loss_dice'].item() == pytest.approx(dice, rel=1e-5)
    if legacy:  # the double sigmoid changes the focal term only
        assert focal != pytest.approx(expected_losses(False)[0], rel=1e-2)


def test_mask_focal_loss_matches_mmdet():
    torch.manual_seed(0)
    pred = torch.randn(1, 7, 9) * 3
    target = (torch.rand(1, 7, 9) > 0.5).float()
    ours = MaskFocalLoss()(pred, target)
    mmdet = MODELS.build(dict(type='mmdet.FocalLoss'))(pred, target)
    torch.testing.assert_close(ours, mmdet)


def test_legacy_needs_a_supporting_loss():
    head = tiny_head(legacy_double_sigmoid=True)
    assert head.loss_mask[0].legacy_double_sigmoid
    with pytest.raises(ValueError, match='legacy_double_sigmoid'):
        LightMaskDecoderHead(
            **TINY,
            loss_mask=dict(type='mmdet.DiceLoss', naive_dice=True, eps=1.0),
            legacy_double_sigmoid=True)


def test_gradients_reach_all_but_dead_qk():
    torch.manual_seed(0)
    neck = DSFFNeck(vit_channels=64, llm_channels=128, embed_dims=32,
                    num_heads=4, ffn_channels=48)
    head = LightMaskDecoderHead(**TINY)
    neck.init_weights()
    head.init_weights()
    fused = neck(torch.randn(2, 64, 4, 6), torch.randn(2, 128, 2, 3))
    logits = head(fused, torch.randn(3, 128), torch.tensor([0, 1, 1]))
    gts = [(torch.rand(s) > 0.5).to(torch.uint8)
           for s in [(20, 30), (16, 24), (9, 13)]]
    sum(head.loss_by_feat(logits, gts).values()).backward()
    for module in (neck, head):
        for name, param in module.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    attn = head.ca_layer_vl.decoder.layers[0].multihead_attn
    dead = 2 * 32  # q and k rows of the packed in-projection
    assert attn.in_proj_weight.grad[:dead].abs().max() < 1e-6
    assert attn.in_proj_bias.grad[:dead].abs().max() < 1e-6
    assert attn.in_proj_weight.grad[dead:].abs().max() > 1e-4


def test_init_weights():
    head = tiny_head()
    bn = head.conv1[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    layer = head.ca_layer_vl.decoder.layers[0]
    assert torch.all(layer.multihead_attn.in_proj_bias == 0)
    assert torch.all(layer.linear1.bias == 0)
    bound = math.sqrt(6 / (32 * 9 + 16 * 9))  # xavier bound of conv1
    assert head.conv1[0].weight.abs().max() <= bound


def test_mask_prior_prob_sets_the_final_bias():
    head = LightMaskDecoderHead(llm_channels=16, embed_dims=8, num_heads=2,
                                ffn_channels=8, patch_size=2,
                                mask_prior_prob=0.05)
    head.init_weights()
    assert torch.allclose(head.conv2.bias,
                          torch.tensor([-math.log(0.95 / 0.05)]))
    plain = LightMaskDecoderHead(llm_channels=16, embed_dims=8, num_heads=2,
                                 ffn_channels=8, patch_size=2)
    plain.init_weights()
    assert abs(float(plain.conv2.bias)) < 1.0  # PyTorch default bound 1/5
    with pytest.raises(ValueError, match='mask_prior_prob'):
        LightMaskDecoderHead(llm_channels=16, mask_prior_prob=1.5)
