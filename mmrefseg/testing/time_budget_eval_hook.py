# Copyright (c) mmrefseg contributors.
"""Evaluate at wall-clock marks of training time and stop after the last."""
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import broadcast_object_list, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmrefseg.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetEvalHook(Hook):
    """Learning curve against training minutes, e.g. real vs control text.

    At each mark of *training* time (evaluation time is not counted) every
    named dataloader is evaluated with its own evaluator, a row is logged,
    and after the last mark training stops. Used by the grounding benchmark
    and the README quick start; usable in any config.

    Args:
        minutes (Sequence[float]): training-time marks, increasing.
        dataloaders (dict): name → dataloader config.
        evaluator (dict): evaluator/metric config, built once per name.
        key (str): metric key shown in the summary table.
        stop_after_last (bool): end training at the last mark.
        unit (str): 'minutes' of training time, or 'iters' to put the
            marks at iteration counts instead (timing-independent runs).
    """

    priority = 'LOW'

    def __init__(self,
                 minutes: Sequence[float],
                 dataloaders: Dict[str, dict],
                 evaluator: dict,
                 key: str = 'refseg/cIoU',
                 stop_after_last: bool = True,
                 unit: str = 'minutes') -> None:
        if unit not in ('minutes', 'iters'):
            raise ValueError(f"unit must be 'minutes' or 'iters', got {unit}")
        self.unit = unit
        self.minutes = sorted(float(m) for m in minutes)
        self.dataloader_cfgs = dataloaders
        self.evaluator_cfg = evaluator
        self.key = key
        self.stop_after_last = stop_after_last
        self.rows: List[dict] = []
        self._train_seconds = 0.0
        self._tick: Optional[float] = None

    def before_train(self, runner) -> None:
        self._loaders = {
            name: runner.build_dataloader(cfg)
            for name, cfg in self.dataloader_cfgs.items()
        }
        self._evaluators = {
            name: runner.build_evaluator(self.evaluator_cfg)
            for name in self._loaders
        }
        for name, evaluator in self._evaluators.items():
            evaluator.dataset_meta = self._loaders[name].dataset.metainfo
        self._tick = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        now = time.perf_counter()
        self._train_seconds += now - self._tick
        self._tick = now
        if self.unit == 'iters':
            progress = runner.iter + 1
        else:
            # Data-parallel ranks must agree on when to evaluate (the
            # evaluation gathers across them): rank 0's clock decides.
            progress = self._train_seconds / 60
            if get_world_size() > 1:
                shared = [progress]
                broadcast_object_list(shared, src=0)
                progress = shared[0]
        if not self.minutes or progress < self.minutes[0]:
            return
        self.minutes.pop(0)
        row = dict(minutes=self._train_seconds / 60, iters=runner.iter + 1)
        for name in self._loaders:
            row[name] = self._evaluate(runner, name)
        self.rows.append(row)
        shown = ', '.join(f'{n}: {row[n].get(self.key, float("nan")):.2f}'
                          for n in self._loaders)
        print_log(f'[time budget] {row["minutes"]:.1f} min, iter '
                  f'{row["iters"]}: '
                  f'{shown}', logger='current')
        if not self.minutes and self.stop_after_last:
            runner.train_loop._max_iters = runner.iter + 1
        self._tick = time.perf_counter()

    @torch.no_grad()
    def _evaluate(self, runner, name: str) -> dict:
        model = runner.model
        was_training = model.training
        model.eval()
        evaluator = self._evaluators[name]
        for batch in self._loaders[name]:
            outputs = model.val_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
        metrics = evaluator.evaluate(len(self._loaders[name].dataset))
        model.train(was_training)
        return metrics

    def after_train(self, runner) -> None:
        if not self.rows:
            return
        names = list(self._loaders)
        head = '| minutes | iters | ' + ' | '.join(
            f'{n} {self.key.split("/")[-1]}' for n in names) + ' |'
        lines = [head, '|' + '---|' * (2 + len(names))]
        for row in self.rows:
            vals = ' | '.join(f'{row[n].get(self.key, float("nan")):.2f}'
                              for n in names)
            lines.append(f'| {row["minutes"]:.1f} | {row["iters"]} | {vals} |')
        print_log('Learning curve:\n' + '\n'.join(lines), logger='current')
