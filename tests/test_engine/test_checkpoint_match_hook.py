# Copyright (c) mmrefseg contributors.
"""CheckpointMatchHook: a checkpoint from another config fails to load
(naming keys and both shapes) unless ``load_from_partial=True``."""
import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmrefseg.apis import add_checkpoint_match_hook
from mmrefseg.engine import CheckpointMismatchError
from mmrefseg.engine.hooks import compare_state_dict


class TwoLayers(BaseModel):

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.neck = nn.Linear(2, width)
        self.decode_head = nn.Linear(width, 1)
        self.backbone = nn.BatchNorm1d(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.decode_head(self.neck(self.backbone(inputs)))


def _save(tmp_path, name, model, **extra) -> str:
    path = tmp_path / name
    torch.save(dict(state_dict=model.state_dict(), **extra), path)
    return str(path)


def _runner(tmp_path, load_from, width=4, **cfg) -> Runner:
    return Runner(model=TwoLayers(width), work_dir=str(tmp_path / 'work'),
                  load_from=load_from, default_scope='mmrefseg',
                  default_hooks=dict(
                      checkpoint_match=dict(type='CheckpointMatchHook')),
                  cfg=dict(**cfg))


def test_matching_checkpoint_loads(tmp_path):
    src = TwoLayers(4)
    runner = _runner(tmp_path, _save(tmp_path, 'same.pth', src))
    runner.load_or_resume()
    for key, value in src.state_dict().items():
        assert torch.equal(runner.model.state_dict()[key], value)


def test_other_width_fails_naming_keys_and_shapes(tmp_path):
    path = _save(tmp_path, 'wide.pth', TwoLayers(8))
    runner = _runner(tmp_path, path, width=4)
    before = runner.model.neck.weight.detach().clone()
    with pytest.raises(CheckpointMismatchError) as err:
        runner.load_or_resume()
    msg = str(err.value)
    assert msg.startswith(f'{path} does not match the model: '
                          '3 tensors with other shapes')
    assert 'neck.weight: checkpoint (8, 2) vs model (4, 2)' in msg
    assert 'decode_head.weight: checkpoint (1, 8) vs model (1, 4)' in msg
    assert 'load_from_partial=True' in msg
    # Nothing was copied into the model.
    assert torch.equal(runner.model.neck.weight, before)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = TwoLayers(4).state_dict()
    state.pop('decode_head.bias')
    state['aux.weight'] = torch.zeros(3)
    path = tmp_path / 'keys.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(CheckpointMismatchError) as err:
        _runner(tmp_path, str(path)).load_or_resume()
    msg = str(err.value)
    assert '1 key only in the checkpoint' in msg
    assert 'only in checkpoint: aux.weight' in msg
    assert 'not in checkpoint: decode_head.bias' in msg


def test_first_few_keys_only(tmp_path):
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(10)])
    other = nn.Sequential(*[nn.Linear(3, 2) for _ in range(10)])
    report = compare_state_dict(model, other.state_dict())
    lines = report.lines(limit=3)
    assert len(lines) == 4 and lines[-1] == '  ... and 7 more (shape)'
    assert report.counts() == '10 tensors with other shapes'


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_partial_opt_in_loads_matching_keys_and_lists_skipped(tmp_path):
    src = TwoLayers(8)
    path = _save(tmp_path, 'wide.pth', src)
    runner = _runner(tmp_path, path, width=4, load_from_partial=True)
    records = _Records()
    runner.logger.addHandler(records)
    runner.load_or_resume()
    runner.logger.removeHandler(records)
    # The matching BN weights were loaded, the mismatched ones skipped.
    assert torch.equal(runner.model.backbone.weight, src.backbone.weight)
    assert runner.model.neck.weight.shape == (4, 2)
    out = '\n'.join(records.messages)
    assert 'partial load (load_from_partial=True)' in out
    assert 'shape: neck.weight: checkpoint (8, 2) vs model (4, 2)' in out


def test_declared_partial_checkpoint(tmp_path):
    """A converter's checkpoint that says which modules it holds."""
    src = TwoLayers(4)
    state = {k: v for k, v in src.state_dict().items()
             if not k.startswith('backbone.')}
    path = tmp_path / 'released.pth'
    covers = ['decode_head.', 'neck.']
    torch.save(dict(state_dict=state, meta=dict(state_dict_covers=covers)),
               path)
    runner = _runner(tmp_path, str(path))
    runner.load_or_resume()
    assert torch.equal(runner.model.neck.weight, src.neck.weight)
    # Inside the declared modules the check stays strict.
    state.pop('neck.bias')
    torch.save(dict(state_dict=state, meta=dict(state_dict_covers=covers)),
               path)
    with pytest.raises(CheckpointMismatchError, match='neck.bias'):
        _runner(tmp_path, str(path)).load_or_resume()


def test_build_runner_adds_the_hook(tmp_path):
    cfg = Config(dict(model=dict(type='mmrefseg.ToyNothing'),
                      work_dir=str(tmp_path)))
    add_checkpoint_match_hook(cfg)
    assert cfg.default_hooks.checkpoint_match.type == \
        'mmrefseg.CheckpointMatchHook'
    # Already listed (the base runtime config): not added twice.
    cfg = Config(dict(custom_hooks=[dict(type='CheckpointMatchHook')]))
    add_checkpoint_match_hook(cfg)
    assert 'checkpoint_match' not in cfg.get('default_hooks', {})
    # Explicitly removed.
    cfg = Config(dict(default_hooks=dict(checkpoint_match=None)))
    add_checkpoint_match_hook(cfg)
    assert 'checkpoint_match' not in cfg.default_hooks


def test_base_runtime_config_has_hook_and_flag():
    cfg = Config.fromfile('configs/_base_/default_runtime.py')
    assert cfg.default_hooks.checkpoint_match.type == 'CheckpointMatchHook'
    assert cfg.load_from_partial is False


def test_tiny_mllmseg_other_decoder_width(synthetic_root, tmp_path):
    """The issue's case on a real config: a checkpoint of a 16-wide decoder
    loaded (load_from, as tools/test.py does) into a 32-wide one."""
    from .test_train_resume import _cfg
    narrow = Runner.from_cfg(_cfg(synthetic_root, str(tmp_path / 'a'), 1))
    path = tmp_path / 'narrow.pth'
    torch.save(dict(state_dict=narrow.model.state_dict()), path)
    cfg = _cfg(synthetic_root, str(tmp_path / 'b'), 1)
    cfg.model.decode_head.update(embed_dims=32)
    cfg.load_from = str(path)
    wide = Runner.from_cfg(cfg)
    with pytest.raises(CheckpointMismatchError) as err:
        wide.load_or_resume()
    msg = str(err.value)
    assert msg.startswith(f'{path} does not match the model: ')
    assert 'tensors with other shapes.\n  shape: decode_head.text_down.' \
        'weight: checkpoint (16, 32) vs model (32, 32)\n' in msg
    assert msg.count('\n  shape: ') == 5 and '... and 17 more' in msg
