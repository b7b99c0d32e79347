# Copyright (c) mmrefseg contributors.
import pytest
import torch
import torch.nn.functional as F

from mmrefseg.models.layers import DySample


def test_init_pos_layout():
    # channel = xy * 16 + g * 4 + a * 2 + b; x = h[b], y = h[a]
    h = [-0.25, 0.25]
    expected = torch.tensor([
        h[b] if xy == 0 else h[a] for xy in range(2) for _ in range(4)
        for a in range(2) for b in range(2)
    ])
    init_pos = DySample(32, scale_factor=2, groups=4).init_pos
    assert init_pos.shape == (1, 32, 1, 1)
    torch.testing.assert_close(init_pos.flatten(), expected)


def zero_offset_dysample(channels, scale, groups) -> DySample:
    module = DySample(channels, scale_factor=scale, groups=groups)
    torch.nn.init.zeros_(module.offset.weight)
    torch.nn.init.zeros_(module.offset.bias)
    return module


@pytest.mark.parametrize('scale,shape', [(2, (5, 7)), (2, (4, 4)),
                                         (3, (3, 5))])
def test_dysample_zero_offset_is_bilinear(scale, shape):
    module = zero_offset_dysample(8, scale, groups=4)
    x = torch.randn(2, 8, *shape)
    expected = F.interpolate(
        x, scale_factor=scale, mode='bilinear', align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected)


def test_dysample_offset_channels():
    """x offsets come first, groups are contiguous channel blocks."""
    module = zero_offset_dysample(8, 2, groups=4)
    x = torch.randn(1, 8, 5, 6)
    ref = F.interpolate(x, scale_factor=2, mode='bilinear')
    with torch.no_grad():
        # +1 input pixel in x for group 0 only: channels 0..3 are its x.
        module.offset.bias[0:4] = 1 / DySample.OFFSET_SCOPE
        out = module(x)
        torch.testing.assert_close(out[:, :2, :, :-2], ref[:, :2, :, 2:])
        torch.testing.assert_close(out[:, 2:], ref[:, 2:])
        # +1 input pixel in y for group 3: channels 16 + 12..15.
        module.offset.bias.zero_()
        module.offset.bias[28:32] = 1 / DySample.OFFSET_SCOPE
        out = module(x)
        torch.testing.assert_close(out[:, 6:, :-2], ref[:, 6:, 2:])
        torch.testing.assert_close(out[:, :6], ref[:, :6])
