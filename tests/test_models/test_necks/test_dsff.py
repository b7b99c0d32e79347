# Copyright (c) mmrefseg contributors.
import math

import pytest
import torch

from mmrefseg.models.necks import DSFFNeck
from mmrefseg.registry import MODELS

# Released ``res_decoder.*`` keys owned by the neck, with their 8B shapes
# (MLLMSeg InternVL2.5-8B release).
D, LLM_8B = 1024, 4096
RELEASED_NECK_KEYS = {
    'img_llm_down.weight': (D, LLM_8B),
    'img_llm_down.bias': (D, ),
    'text_out_adapter.weight': (D, 3 * D),
    'text_out_adapter.bias': (D, ),
    'upsample_adapter_l.offset.weight': (32, D, 1, 1),
    'upsample_adapter_l.offset.bias': (32, ),
    'upsample_adapter_l.init_pos': (1, 32, 1, 1),
    'ca_layer_v2l.decoder.layers.0.self_attn.in_proj_weight': (3 * D, D),
    'ca_layer_v2l.decoder.layers.0.self_attn.in_proj_bias': (3 * D, ),
    'ca_layer_v2l.decoder.layers.0.self_attn.out_proj.weight': (D, D),
    'ca_layer_v2l.decoder.layers.0.self_attn.out_proj.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.multihead_attn.in_proj_weight': (3 * D, D),
    'ca_layer_v2l.decoder.layers.0.multihead_attn.in_proj_bias': (3 * D, ),
    'ca_layer_v2l.decoder.layers.0.multihead_attn.out_proj.weight': (D, D),
    'ca_layer_v2l.decoder.layers.0.multihead_attn.out_proj.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.linear1.weight': (D, D),
    'ca_layer_v2l.decoder.layers.0.linear1.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.linear2.weight': (D, D),
    'ca_layer_v2l.decoder.layers.0.linear2.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm1.weight': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm1.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm2.weight': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm2.bias': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm3.weight': (D, ),
    'ca_layer_v2l.decoder.layers.0.norm3.bias': (D, ),
    'ca_layer_v2l.decoder.norm.weight': (D, ),
    'ca_layer_v2l.decoder.norm.bias': (D, ),
}
TINY = dict(
    vit_channels=64,
    llm_channels=128,
    embed_dims=32,
    num_heads=4,
    ffn_channels=48)


def tiny_neck(**kwargs) -> DSFFNeck:
    torch.manual_seed(0)
    neck = DSFFNeck(**{**TINY, **kwargs})
    neck.init_weights()
    return neck.eval()


def test_released_layout_8b():
    with torch.device('meta'):
        neck = DSFFNeck(vit_channels=1024, llm_channels=LLM_8B)
    # init_pos is in the state dict: a persistent buffer, as released.
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert shapes == RELEASED_NECK_KEYS
    assert neck.vit_proj is None
    # img_llm_down + ca_layer_v2l + text_out_adapter + DySample offset
    assert sum(p.numel() for p in neck.parameters()) == (
        4_195_328 + 10_504_192 + 3_146_752 + 32_800)


def test_build_from_registry_and_shapes():
    neck = MODELS.build(dict(type='DSFFNeck', **TINY)).eval()
    assert neck.vit_proj is not None  # 64 != 32
    vit = torch.randn(2, 64, 16, 12)  # non-square ViT grid
    llm = torch.randn(2, 128, 8, 6)
    with torch.no_grad():
        out = neck(vit, llm)
    assert out.shape == (2, 32, 16, 12)
    # Square grids and vit_channels == embed_dims (no projection).
    neck = tiny_neck(vit_channels=32)
    assert neck.vit_proj is None
    with torch.no_grad():
        out = neck(torch.randn(1, 32, 8, 8), torch.randn(1, 128, 4, 4))
    assert out.shape == (1, 32, 8, 8)


def test_grid_mismatch_raises():
    neck = tiny_neck()
    with pytest.raises(ValueError, match='2x the LLM grid'):
        neck(torch.randn(1, 64, 16, 12), torch.randn(1, 128, 8, 8))


def test_images_are_independent():
    neck = tiny_neck()
    vit, llm = torch.randn(3, 64, 8, 6), torch.randn(3, 128, 4, 3)
    with torch.no_grad():
        batched = neck(vit, llm)
        single = neck(vit[1:2], llm[1:2])
    torch.testing.assert_close(batched[1:2], single, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_init_weights():
    neck = tiny_neck()
    offset = neck.upsample_adapter_l.offset
    assert offset.weight.std() < 0.01
    assert torch.all(offset.bias == 0)
    for name, param in neck.named_parameters():
        if param.dim() > 1 and 'offset' not in name:
            receptive_field = param[0, 0].numel()
            fan_in = param.shape[1] * receptive_field
            fan_out = param.shape[0] * receptive_field
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert param.abs().max() <= bound + 1e-6, name
            assert param.abs().max() > 0.5 * bound, name
    layer = neck.ca_layer_v2l.decoder.layers[0]
    for attn in (layer.self_attn, layer.multihead_attn):
        assert torch.all(attn.in_proj_bias == 0)
        assert torch.all(attn.out_proj.bias == 0)
    assert torch.all(layer.linear1.bias == 0)
    assert torch.all(layer.linear2.bias == 0)
    # faithful_init reproduces the released xavier overwrite of the offset.
    faithful = tiny_neck(faithful_init=True).upsample_adapter_l.offset
    assert faithful.weight.std() > 0.05
    assert torch.all(faithful.bias == 0)


def test_neck_matches_manual_composition():
    """Channel order V2L | V | L32 and token <-> grid layout."""
    neck = tiny_neck(vit_channels=32)
    vit, llm = torch.randn(1, 32, 4, 6), torch.randn(1, 128, 2, 3)
    with torch.no_grad():
        out = neck(vit, llm)
        vit_tok = vit.flatten(2).transpose(1, 2)  # token t -> (t // 6, t % 6)
        llm_tok = neck.img_llm_down(llm.flatten(2).transpose(1, 2))
        v2l = neck.ca_layer_v2l(vit_tok, llm_tok)
        l32 = neck.upsample_adapter_l(
            llm_tok.transpose(1, 2).reshape(1, 32, 2, 3))
        cat = torch.cat([v2l, vit_tok, l32.flatten(2).transpose(1, 2)], -1)
        expected = neck.text_out_adapter(cat).transpose(1, 2).reshape(
            1, 32, 4, 6)
    torch.testing.assert_close(out, expected)
