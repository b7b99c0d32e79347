# Copyright (c) mmrefseg contributors.
import glob
import json
import os.path as osp
from unittest import mock

import pytest
from mmengine.config import Config

from mmrefseg.engine.hooks import RankZeroLoggerHook, rank_zero_logger_hook
from mmrefseg.registry import HOOKS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _Runner:
    """What ``LoggerHook.after_test_epoch`` reads from a runner."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.test_dataloader = [0, 1, 2]
        self.logger = mock.Mock()
        self.log_processor = mock.Mock()
        self.log_processor.get_log_after_epoch.return_value = (
            {'refseg/cIoU': 51.5}, 'Iter(test) [3/3] refseg/cIoU: 51.5')


@pytest.mark.parametrize('main', [True, False])
def test_only_rank_zero_writes_the_metrics_json(tmp_path, main):
    hook = RankZeroLoggerHook()
    hook.json_log_path = 'run.json'
    runner = _Runner(tmp_path)
    with mock.patch.object(rank_zero_logger_hook.dist, 'is_main_process',
                           return_value=main):
        hook.after_test_epoch(runner, {'refseg/cIoU': 51.5})
    files = glob.glob(str(tmp_path / '*.json'))
    if main:
        with open(files[0]) as f:
            assert json.load(f) == {'refseg/cIoU': 51.5}
    else:
        assert files == []  # MMEngine's hook writes here on every rank
    # Every rank still logs the metrics line.
    runner.logger.info.assert_called_once_with(
        'Iter(test) [3/3] refseg/cIoU: 51.5')


def test_default_runtime_uses_it():
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/default_runtime.py'))
    hook = HOOKS.build(cfg.default_hooks.logger)
    assert type(hook) is RankZeroLoggerHook
    assert hook.interval == 50 and hook.log_metric_by_epoch is False
