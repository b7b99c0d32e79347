# Copyright (c) mmrefseg contributors.
"""MMEngine's ``LoggerHook`` with the test-epoch JSON written by rank 0."""
from typing import Dict, Optional

from mmengine import dist
from mmengine.hooks import LoggerHook

from mmrefseg.registry import HOOKS


@HOOKS.register_module()
class RankZeroLoggerHook(LoggerHook):
    """``LoggerHook`` whose test metrics file is written by one process.

    MMEngine's ``LoggerHook.after_test_epoch`` dumps the metrics JSON
    (``<log_dir>/<timestamp>.json``) on every rank, to the same path and in
    ``'w'`` mode. Under ``tools/dist_test.sh`` the writes race: a rank can
    truncate the file while the other is still writing, which leaves a torn
    line (seen as ``{... "time": 0.0147}9}`` on a loaded 2-core machine).
    Every rank already holds the same metrics (the evaluator broadcasts
    them), so rank 0 alone writes the file; the others only log the line, as
    before. Everything else is MMEngine's hook, unchanged.
    """

    def after_test_epoch(self, runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        if dist.is_main_process():
            super().after_test_epoch(runner, metrics)
            return
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)
