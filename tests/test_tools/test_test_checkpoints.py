# Copyright (c) mmrefseg contributors.
"""tools/test.py CONFIG CKPT with hostile, mismatched and non-checkpoint
files (the toy model and config of test_tools_cli.py)."""
import logging
import os.path as osp

import pytest
import test_tools_cli
import torch
from malicious_files import hostile_file
from test_tools_cli import REPO, _run_tool, load_tool

from mmrefseg.engine import CheckpointMismatchError
from mmrefseg.fileio import NotACheckpointError, UnsafeFileError

TEST_PY = osp.join(REPO, 'tools', 'test.py')
# The toy model and config (a fixture) of test_tools_cli.py.
toy = test_tools_cli.toy


def _ckpt(tmp_path, name, rows):
    path = tmp_path / name
    torch.save(dict(state_dict={'linear.weight': torch.zeros(rows, 2),
                                'linear.bias': torch.zeros(rows)}), path)
    return str(path)


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _test(toy, ckpt, tmp_path, *extra) -> str:
    """What tools/test.py's main does; returns the runner's log."""
    tool = load_tool('test')
    cfg = tool.build_cfg(tool.parse_args(
        [str(toy), ckpt, '--work-dir', str(tmp_path / 'wd'), *extra]))
    runner = tool.build_runner(cfg)
    records = _Records()
    runner.logger.addHandler(records)
    try:
        runner.test()
    finally:
        runner.logger.removeHandler(records)
    return '\n'.join(records.messages)


def test_hostile_plain_pickle_subprocess(toy, tmp_path):
    """The issue's reproduction: the payload used to run before the
    'Invalid magic number' error."""
    path, marker = hostile_file(tmp_path, 'plain')
    proc = _run_tool([TEST_PY, str(toy), str(path)], tmp_path)
    assert proc.returncode != 0
    assert 'UnsafeFileError' in proc.stderr
    assert f'Refusing to load {path}' in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize('container', ['legacy', 'zip', 'bin',
                                       'safetensors'])
def test_hostile_containers(toy, tmp_path, container):
    path, marker = hostile_file(tmp_path, container)
    with pytest.raises(UnsafeFileError, match=f'Refusing to load {path}'):
        _test(toy, str(path), tmp_path)
    assert not marker.exists()


def test_mismatched_checkpoint_fails_then_partial_opt_in(toy, tmp_path):
    good = _ckpt(tmp_path, 'good.pth', 1)
    assert 'refseg/cIoU: 66.6667' in _test(toy, good, tmp_path)

    wide = _ckpt(tmp_path, 'wide.pth', 3)
    with pytest.raises(CheckpointMismatchError) as err:
        _test(toy, wide, tmp_path)
    assert f'{wide} does not match the model' in str(err.value)
    assert 'linear.weight: checkpoint (3, 2) vs model (1, 2)' in str(
        err.value)

    log = _test(toy, wide, tmp_path, '--cfg-options',
                'load_from_partial=True')
    assert 'partial load (load_from_partial=True)' in log
    assert 'shape: linear.bias: checkpoint (3,) vs model (1,)' in log
    assert 'refseg/cIoU: 66.6667' in log


@pytest.mark.parametrize('content,why', [
    (b'', 'the file is empty'),
    (b'iter 1000, loss 0.3\n', 'neither a zip archive'),
    (None, 'truncated or corrupt'),
])
def test_not_a_checkpoint(toy, tmp_path, content, why):
    path = tmp_path / 'ckpt.pth'
    if content is None:
        full = _ckpt(tmp_path, 'full.pth', 1)
        content = open(full, 'rb').read()[:150]
    path.write_bytes(content)
    with pytest.raises(NotACheckpointError) as err:
        _test(toy, str(path), tmp_path)
    assert f'{path} is not a checkpoint' in str(err.value)
    assert why in str(err.value)
