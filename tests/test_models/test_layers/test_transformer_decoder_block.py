# Copyright (c) mmrefseg contributors.
import torch
import torch.nn as nn

from mmrefseg.models.layers import TransformerDecoderBlock


def test_released_key_layout():
    block = TransformerDecoderBlock(16, 2, 32, num_layers=1)
    keys = set(block.state_dict())
    # <name>.decoder.layers.<i>.{self_attn,multihead_attn,linear1,linear2,
    # norm1..3} and <name>.decoder.norm, as in MLLMSeg's release.
    for key in ('decoder.layers.0.self_attn.in_proj_weight',
                'decoder.layers.0.multihead_attn.out_proj.weight',
                'decoder.layers.0.linear1.weight',
                'decoder.layers.0.linear2.bias',
                'decoder.layers.0.norm3.weight', 'decoder.norm.bias'):
        assert key in keys, key


def test_init_zeroes_projection_biases_and_shapes():
    block = TransformerDecoderBlock(16, 2, 32, dropout=0.0, num_layers=2)
    block.init_weights()
    for module in block.modules():
        if isinstance(module, nn.MultiheadAttention):
            assert torch.count_nonzero(module.in_proj_bias) == 0
        if isinstance(module, nn.Linear):
            assert torch.count_nonzero(module.bias) == 0
    out = block(torch.randn(3, 5, 16), torch.randn(3, 7, 16))
    assert out.shape == (3, 5, 16)
    # The final LayerNorm: every token normalised.
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5),
                               atol=1e-5, rtol=0)
