# Copyright (c) mmrefseg contributors.
"""FSDP / DeepSpeed ZeRO-2 variants of the 8B recipes, the FSDP wrap policy
and clipping of sharded gradients."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import FUNCTIONS, STRATEGIES

from mmrefseg.apis import prepare_cpu_distributed
from mmrefseg.engine.fsdp import is_transformer_layer, layer_wrap_policy
from mmrefseg.engine.fsdp.sharded_optim_wrapper import sharded_clip_grad_norm_
from mmrefseg.registry import MODELS, OPTIM_WRAPPERS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VARIANTS = {
    'configs/mllmseg/internvl8b_refcoco_fsdp.py': 'FSDPStrategy',
    'configs/self1e/internvl3_8b_refcoco_fsdp.py': 'FSDPStrategy',
    'configs/mllmseg/internvl8b_refcoco_deepspeed_zero2.py':
    'DeepSpeedStrategy',
    'configs/self1e/internvl3_8b_refcoco_deepspeed_zero2.py':
    'DeepSpeedStrategy',
}


@pytest.mark.parametrize('path', sorted(VARIANTS))
def test_strategy_config(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    base = Config.fromfile(osp.join(
        ROOT, path.replace('_fsdp.py', '.py').replace(
            '_deepspeed_zero2.py', '.py')))
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == VARIANTS[path]
    assert STRATEGIES.get(cfg.strategy.type) is not None
    # Same recipe: optimizer, LoRA rank, checkpointing, data.
    assert cfg.optim_wrapper.optimizer == base.optim_wrapper.optimizer
    assert cfg.model.backbone.llm_lora == base.model.backbone.llm_lora
    assert cfg.model.backbone.gradient_checkpointing
    assert cfg.train_dataloader == base.train_dataloader
    if cfg.strategy.type == 'FSDPStrategy':
        wrapper = cfg.strategy.model_wrapper
        assert wrapper.use_orig_params
        assert wrapper.mixed_precision.param_dtype == 'bfloat16'
        assert cfg.model.backbone.torch_dtype == 'float32'
        assert FUNCTIONS.get(wrapper.auto_wrap_policy) is layer_wrap_policy
        assert OPTIM_WRAPPERS.get(cfg.optim_wrapper.type) is not None
        assert (cfg.optim_wrapper.accumulative_counts ==
                base.optim_wrapper.accumulative_counts)
    else:
        ds = cfg.strategy
        assert ds.bf16.enabled and ds.zero_optimization.stage == 2
        assert ds.gradient_clipping == base.optim_wrapper.clip_grad.max_norm
        assert (ds.gradient_accumulation_steps ==
                base.optim_wrapper.accumulative_counts)
        assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'


@pytest.mark.parametrize('path', sorted(VARIANTS))
def test_strategy_refused_on_cpu_with_reason(path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('CPU-only behaviour')
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.launcher = 'pytorch'
    with pytest.raises(RuntimeError, match='needs GPUs'):
        prepare_cpu_distributed(cfg)


def test_layer_wrap_policy_picks_vit_and_llm_layers(tiny_backbone_cfg):
    backbone = MODELS.build(tiny_backbone_cfg)
    wrapped = [n for n, m in backbone.named_modules()
               if layer_wrap_policy(m, recurse=False, nonwrapped_numel=0)]
    cfg = backbone.hf.config
    assert len(wrapped) == (cfg.vision_config.num_hidden_layers +
                            cfg.text_config.num_hidden_layers)
    assert all(is_transformer_layer(m) for n, m in backbone.named_modules()
               if n in wrapped)
    assert layer_wrap_policy(backbone, recurse=True, nonwrapped_numel=0)


def test_sharded_clip_equals_global_clip_in_one_process():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    for pa, pb in zip(a, b):
        g = torch.randn_like(pa) * 3
        pa.grad, pb.grad = g.clone(), g.clone()
    norm_a = sharded_clip_grad_norm_(a, max_norm=1.0)
    norm_b = torch.nn.utils.clip_grad_norm_(b, max_norm=1.0)
    torch.testing.assert_close(norm_a, norm_b)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa.grad, pb.grad)
    # Shards: the norm of the pieces is the norm of the whole (one process
    # holding two "shards" of one gradient adds their p-th powers).
    whole = torch.randn(8)
    halves = [torch.nn.Parameter(torch.zeros(4)) for _ in range(2)]
    halves[0].grad, halves[1].grad = whole[:4].clone(), whole[4:].clone()
    norm = sharded_clip_grad_norm_(halves, max_norm=1e9)
    torch.testing.assert_close(norm, whole.norm())
