# Copyright (c) mmrefseg contributors.
import copy

import pytest
import torch
from test_internvl import _batch

from mmrefseg.models.backbones.compiled_blocks import repeated_blocks
from mmrefseg.registry import MODELS


def test_repeated_blocks_are_the_llm_then_the_vit_layers(tiny_backbone_cfg):
    hf = MODELS.build(tiny_backbone_cfg).hf
    llm = list(hf.model.language_model.layers)
    vit = list(hf.model.vision_tower.encoder.layer)
    assert len(llm) == len(vit) == 2
    assert repeated_blocks(hf) == llm + vit
    assert repeated_blocks(hf, ('vit', )) == vit
    with pytest.raises(ValueError, match='decoder'):
        repeated_blocks(hf, ('llm', 'decoder'))


def test_compiled_blocks_give_the_eager_loss_gradients_and_keys(
        tiny_backbone_cfg):
    """Regional compilation changes speed only: the same loss and
    gradients on two batches of different lengths (one graph, dynamic
    shapes), and the same parameter names, so checkpoints load either way."""
    torch.manual_seed(0)
    eager = MODELS.build(tiny_backbone_cfg)
    compiled = MODELS.build(dict(tiny_backbone_cfg, compile_blocks=True))
    compiled.load_state_dict(eager.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    for answers in ([[200, 201], [202]], [[203, 204, 205, 206, 207]]):
        torch.manual_seed(1)
        batch = _batch(eager, answers)
        losses = []
        for model in (eager, compiled):
            model.zero_grad()
            loss = model(*batch).lm_loss
            loss.backward()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-4,
                                   atol=1e-5)
        for (name, p0), p1 in zip(eager.named_parameters(),
                                  compiled.parameters()):
            if p0.grad is not None:
                torch.testing.assert_close(p1.grad, p0.grad, rtol=1e-3,
                                           atol=1e-5, msg=name)
    # The blocks really run compiled (their calls go through dynamo).
    block = compiled.hf.model.language_model.layers[0]
    assert block._compiled_call_impl is not None
    assert eager.hf.model.language_model.layers[0]._compiled_call_impl \
        is None


def test_compiled_blocks_run_eagerly_outside_training(tiny_backbone_cfg):
    """Generation's one-token steps would recompile the graph at every new
    cache length; in eval mode the blocks run eagerly, in training mode
    compiled again."""
    bb = MODELS.build(dict(tiny_backbone_cfg, compile_blocks=True))
    blocks = repeated_blocks(bb.hf)
    assert all(b._compiled_call_impl is not None for b in blocks)
    bb.eval()
    assert all(b._compiled_call_impl is None for b in blocks)
    bb.train()
    assert all(b._compiled_call_impl is not None for b in blocks)
    built_in_eval = MODELS.build(dict(tiny_backbone_cfg, compile_blocks=True))
    built_in_eval.requires_grad_(False).eval()
    with torch.no_grad():
        pixels, ids, mask, labels = _batch(built_in_eval, [[200, 201]])
        out = built_in_eval(pixels, ids, mask, labels)
    assert torch.isfinite(out.lm_loss)


def test_compile_blocks_config_passes_towers_and_options(tiny_backbone_cfg):
    bb = MODELS.build(
        dict(copy.deepcopy(tiny_backbone_cfg),
             compile_blocks=dict(towers=('vit', ), dynamic=False)))
    assert all(b._compiled_call_impl is not None
               for b in bb.hf.model.vision_tower.encoder.layer)
    assert all(b._compiled_call_impl is None
               for b in bb.hf.model.language_model.layers)
