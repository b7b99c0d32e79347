# Copyright (c) mmrefseg contributors.
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from mmrefseg.engine import AutocastOptimWrapper
from mmrefseg.utils import register_all_modules


def _wrapper(model: nn.Module, **kwargs) -> AutocastOptimWrapper:
    register_all_modules()
    return build_optim_wrapper(
        model, dict(type='AutocastOptimWrapper',
                    optimizer=dict(type='AdamW', lr=1e-2), **kwargs))


def test_forward_runs_in_bf16_and_params_stay_fp32():
    model = nn.Linear(8, 4)
    wrapper = _wrapper(model, cpu_fallback=False)
    assert isinstance(wrapper, AutocastOptimWrapper)
    x = torch.randn(3, 8)
    with wrapper.optim_context(model):
        inside = model(x)
    assert inside.dtype == torch.bfloat16
    assert model(x).dtype == torch.float32  # the context does not leak
    wrapper.update_params(inside.float().square().mean())
    assert model.weight.dtype == torch.float32
    assert all(s['exp_avg'].dtype == torch.float32
               for s in wrapper.optimizer.state.values())


def test_a_regression_learns_under_autocast():
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    target = x @ torch.randn(16, 1)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 1))
    wrapper = _wrapper(model, clip_grad=dict(max_norm=1.0), cpu_fallback=False)
    losses = []
    for _ in range(300):
        with wrapper.optim_context(model):
            loss = (model(x).float() - target).square().mean()
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_state_dict_round_trip():
    model = nn.Linear(4, 2)
    wrapper = _wrapper(model)
    with wrapper.optim_context(model):
        loss = model(torch.randn(5, 4)).float().sum()
    wrapper.update_params(loss)
    other = _wrapper(nn.Linear(4, 2))
    other.load_state_dict(wrapper.state_dict())
    step = wrapper.optimizer.state_dict()['state'][0]['step']
    assert other.optimizer.state_dict()['state'][0]['step'] == step


@pytest.mark.parametrize('dtype', ['float16', torch.float32, 'bfloat'])
def test_other_dtypes_are_refused_with_the_alternative(dtype):
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        AutocastOptimWrapper(
            optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
            dtype=dtype)


@pytest.mark.parametrize('native', [True, False])
def test_cpu_without_hardware_bf16_trains_in_float32(monkeypatch, native):
    import mmrefseg.engine.optimizers.autocast_optim_wrapper as module
    monkeypatch.setattr(module, 'cpu_has_native_bf16', lambda: native)
    model = nn.Linear(8, 4)
    wrapper = _wrapper(model)
    with wrapper.optim_context(model):
        inside = model(torch.randn(3, 8))
    assert inside.dtype == (torch.bfloat16 if native else torch.float32)


def test_cpu_flag_detection_reads_the_kernel_flags():
    import mmrefseg.engine.optimizers.autocast_optim_wrapper as module
    assert isinstance(module.cpu_has_native_bf16(), bool)
