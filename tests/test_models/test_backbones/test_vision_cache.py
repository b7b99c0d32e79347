# Copyright (c) mmrefseg contributors.
import pytest
import torch
from torch import nn

from mmrefseg.models.backbones.vision_cache import FrozenVisionCache, tile_key
from mmrefseg.registry import MODELS


def test_tile_key_follows_content_shape_and_dtype():
    tile = torch.randn(3, 8, 8)
    assert tile_key(tile) == tile_key(tile.clone())
    changed = tile.clone()
    changed[2, 7, 7] += 1e-3
    assert tile_key(changed) != tile_key(tile)
    assert tile_key(tile.reshape(3, 4, 16)) != tile_key(tile)
    assert tile_key(tile.to(torch.bfloat16)) != tile_key(tile)
    # A non-contiguous view is keyed by its values.
    wide = torch.randn(3, 8, 16)
    assert tile_key(wide[..., ::2]) == tile_key(wide[..., ::2].contiguous())


class _CountingTower(nn.Module):
    """Stands in for the ViT: records the tiles it sees and its mode."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def states(self, pixels):
        self.calls.append((pixels.shape[0], self.training,
                           torch.is_grad_enabled()))
        flat = pixels.flatten(1)
        return {-1: flat[:, None] * 2, 0: flat[:, None] + 1}


def test_fetch_computes_only_new_tiles_in_eval_mode():
    tower = _CountingTower().train()
    cache = FrozenVisionCache(max_items=10)
    a, b, c = (torch.randn(3, 2, 2) for _ in range(3))
    first = cache.fetch(torch.stack([a, b]), tower, tower.states)
    assert tower.calls == [(2, False, False)]  # eval mode, no autograd
    assert tower.training  # its mode is restored
    second = cache.fetch(torch.stack([b, c, a]), tower, tower.states)
    assert tower.calls[1][0] == 1  # only c was new
    assert (cache.hits, cache.misses) == (2, 3)
    assert torch.equal(second[-1][0], first[-1][1])
    assert torch.equal(second[-1][2], first[-1][0])
    assert torch.equal(second[0][1], c.flatten()[None] + 1)


def test_least_recently_used_tile_is_dropped():
    tower = _CountingTower()
    cache = FrozenVisionCache(max_items=2)
    a, b, c = (torch.randn(3, 2, 2) for _ in range(3))
    cache.fetch(a[None], tower, tower.states)
    cache.fetch(b[None], tower, tower.states)
    cache.fetch(a[None], tower, tower.states)  # a is now the most recent
    cache.fetch(c[None], tower, tower.states)  # drops b
    assert len(cache) == 2
    cache.fetch(a[None], tower, tower.states)
    assert len(tower.calls) == 3
    cache.fetch(b[None], tower, tower.states)
    assert len(tower.calls) == 4
    with pytest.raises(ValueError, match='max_items'):
        FrozenVisionCache(max_items=0)


def _frozen_vit_backbone(cfg, **kwargs):
    cfg = dict(cfg, freeze_vit=True, vit_layers=(-1, 1), **kwargs)
    return MODELS.build(cfg)


def test_backbone_with_cache_matches_without_and_skips_the_vit(
        tiny_backbone_cfg):
    torch.manual_seed(0)
    plain = _frozen_vit_backbone(tiny_backbone_cfg)
    cached = _frozen_vit_backbone(tiny_backbone_cfg, vision_cache=True)
    cached.load_state_dict(plain.state_dict())
    runs = []
    cached.hf.model.vision_tower.register_forward_hook(
        lambda m, i, o: runs.append(1))
    size = plain.tile_size
    pixels = torch.randn(3, 3, size, size)
    plain.train()
    cached.train()
    want_vit, want_embeds = plain.extract_vision(pixels)
    for _ in range(2):
        got_vit, got_embeds = cached.extract_vision(pixels)
        torch.testing.assert_close(got_embeds, want_embeds)
        for layer in (-1, 1):
            torch.testing.assert_close(got_vit[layer], want_vit[layer])
    assert len(runs) == 1  # the second call was served from the cache
    # The projector after the cache still learns.
    got_embeds.sum().backward()
    proj = cached.hf.model.multi_modal_projector.linear_1.weight
    assert proj.grad is not None and proj.grad.abs().sum() > 0

    # Evaluation does not use it; new weights empty it.
    cached.eval()
    cached.extract_vision(pixels)
    assert len(runs) == 2
    assert len(cached.vision_cache) == 3
    cached.load_state_dict(plain.state_dict())
    assert len(cached.vision_cache) == 0


def test_cache_refuses_a_trained_vit(tiny_backbone_cfg):
    with pytest.raises(ValueError, match='frozen ViT'):
        MODELS.build(dict(tiny_backbone_cfg, freeze_vit=False,
                          vision_cache=True))
    with pytest.raises(ValueError, match='frozen ViT'):
        MODELS.build(dict(tiny_backbone_cfg, freeze_vit=True,
                          vit_lora=dict(r=4, lora_alpha=8),
                          vision_cache=dict(max_items=4)))
