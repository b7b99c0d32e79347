# Copyright (c) mmrefseg contributors.
"""Integration: a 4-bit LLM + LoRA (the *_qlora.py recipe, tiny) through
MMEngine's Runner: trains, saves, resumes bit-identical, evaluates."""
import pytest
import torch
from mmengine.runner import Runner

from mmrefseg.models.backbones.quantization import quantized_linear_names
from .test_train_resume import _cfg, _weights

pytest.importorskip('bitsandbytes')


def _qlora_cfg(root, work_dir, max_iters):
    cfg = _cfg(root, work_dir, max_iters)
    cfg.model.backbone.update(
        freeze_vit=True, freeze_projector=True, freeze_llm=True,
        llm_lora=dict(r=4, lora_alpha=8),
        quantization_config=dict(bits=4))
    return cfg


def test_qlora_train_checkpoint_resume(synthetic_root, tmp_path):
    full = Runner.from_cfg(
        _qlora_cfg(synthetic_root, str(tmp_path / 'full'), 4))
    assert len(quantized_linear_names(full.model.backbone.hf)) == 7
    start = _weights(full)
    full.train()
    end = _weights(full)
    changed = {k for k in end if not torch.equal(start[k], end[k])}
    # Base LLM weights (packed 4-bit, and their scales) never change.
    assert changed and not any('base_layer' in k for k in changed)
    assert any('lora_B' in k for k in changed)
    assert 'refseg/cIoU' in full.val_loop.run()

    cfg = _qlora_cfg(synthetic_root, str(tmp_path / 'resumed'), 4)
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'full' / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4
    again = _weights(resumed)
    assert end.keys() == again.keys()
    for key in end:
        assert torch.equal(end[key], again[key]), key
