# Copyright (c) mmrefseg contributors.
"""A progress bar with ETA over training iterations."""
import sys
from typing import Optional

from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmrefseg.registry import HOOKS


@HOOKS.register_module()
class TrainProgressBarHook(Hook):
    """Show ``[>>>   ] done/total, iterations/s, elapsed, ETA`` while training.

    MMEngine's logger prints a line every ``interval`` iterations; a short
    CPU run (the quick start) is better served by one bar that moves every
    iteration and says when it will end.

    Args:
        total (int, optional): Iterations the bar counts to; defaults to the
            runner's ``max_iters`` minus the starting iteration.
        bar_width (int): Width of the bar in characters.
    """

    priority = 'VERY_LOW'

    def __init__(self, total: Optional[int] = None,
                 bar_width: int = 40) -> None:
        self.total = total
        self.bar_width = bar_width
        self._bar: Optional[ProgressBar] = None
        self._done = 0

    def before_train(self, runner) -> None:
        total = self.total or (runner.max_iters - runner.iter)
        self._done = 0
        self._bar = ProgressBar(total, bar_width=self.bar_width,
                                file=sys.stdout)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._bar is not None and self._done < self._bar.task_num:
            self._bar.update()
            self._done += 1

    def after_train(self, runner) -> None:
        if self._bar is not None:
            sys.stdout.write('\n')
            sys.stdout.flush()
            self._bar = None
