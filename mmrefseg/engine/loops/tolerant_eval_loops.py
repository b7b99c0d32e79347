# Copyright (c) mmrefseg contributors.
"""Validation/test loops that skip unreadable batches instead of dying.

One truncated JPEG at sample 100 of a 5,000-sample evaluation used to end
the run with no metric at all. These loops catch the error the data loader
raises for a batch (the loading transforms name the file and the sample),
log it, count the batch's samples as skipped, and go on; at the end the
metrics of everything that was read are computed and printed as usual, with
a warning that says how many samples they leave out, and the skipped batches
are written to ``<log_dir>/skipped_batches.json``. More than
``max_skipped_batches`` failures (a wrong data_root, a missing image
folder) end the run with the first error, since a metric over what is left
would mean nothing.

Granularity: the data loader fetches a batch as a whole, so a bad sample
costs its batch (evaluation batches are 1-16 samples here).
"""
import json
import logging
import os.path as osp
from typing import List, Optional

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.logging import print_log
from mmengine.runner.loops import TestLoop, ValLoop, _parse_losses

from mmrefseg.registry import LOOPS


class _SkipBadBatches:
    """Shared iteration of :class:`TolerantValLoop`/:class:`TolerantTestLoop`.
    """

    stage: str  # 'val' or 'test': hook names and the loss buffer

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 max_skipped_batches: Optional[int] = 10) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.max_skipped_batches = max_skipped_batches

    def run(self) -> dict:
        """Evaluate every readable batch, as ``ValLoop``/``TestLoop`` do.

        Returns:
            dict: The metrics.
        """
        stage = self.stage
        self.runner.call_hook(f'before_{stage}')
        self.runner.call_hook(f'before_{stage}_epoch')
        self.runner.model.eval()
        losses = getattr(self, f'{stage}_loss')
        losses.clear()
        skipped = self._iterate(stage)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        self._report(stage, skipped)
        if losses:
            metrics.update(_parse_losses(losses, stage))
        self.runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{stage}')
        return metrics

    def _batches_len(self, idx: int) -> int:
        """Samples in batch ``idx`` of this rank (the last may be short)."""
        loader = self.dataloader
        batch_size = loader.batch_size or 1
        try:
            per_rank = len(loader.sampler)
        except TypeError:
            return batch_size
        return max(0, min(batch_size, per_rank - idx * batch_size))

    def _iterate(self, stage: str) -> List[dict]:
        """Run every readable batch; return the skipped ones."""
        skipped: List[dict] = []
        batches = iter(self.dataloader)
        idx = 0
        while True:
            try:
                data_batch = next(batches)
            except StopIteration:
                break
            except Exception as error:  # a transform or decoder failed
                num = self._batches_len(idx)
                skipped.append(dict(batch=idx, samples=num,
                                    error=f'{type(error).__name__}: {error}'))
                print_log(
                    f'{stage}: batch {idx} ({num} samples) skipped, it '
                    f'could not be loaded: {error}',
                    logger='current',
                    level=logging.ERROR)
                if (self.max_skipped_batches is not None
                        and len(skipped) > self.max_skipped_batches):
                    raise RuntimeError(
                        f'{stage}: more than {self.max_skipped_batches} '
                        'batches could not be loaded; the first error was: '
                        f'{skipped[0]["error"]}') from error
                for metric in self.evaluator.metrics:
                    if hasattr(metric, 'skip_samples'):
                        metric.skip_samples(num)
                idx += 1
                continue
            self.run_iter(idx, data_batch)
            idx += 1
        return skipped

    def _report(self, stage: str, skipped: List[dict]) -> None:
        """Gather the skipped batches of all ranks; warn and save them."""
        rank, world_size = get_dist_info()
        if world_size > 1:
            gathered = all_gather_object(skipped)
            skipped = [dict(s, rank=r) for r, part in enumerate(gathered)
                       for s in part]
        if not skipped or rank != 0:
            return
        path = osp.join(self.runner.log_dir, f'skipped_batches_{stage}.json')
        with open(path, 'w') as f:
            json.dump(skipped, f, indent=1)
        total = sum(s['samples'] for s in skipped)
        print_log(
            f'{stage}: {len(skipped)} batch(es), {total} sample(s), could '
            'not be loaded and are NOT in these metrics; the metrics cover '
            f'the other samples. Details: {path}',
            logger='current',
            level=logging.WARNING)


def _loop_doc(name: str) -> str:
    return f"""MMEngine's ``{name}`` that skips batches that fail to load.

    Args:
        runner: The runner.
        dataloader: The dataloader or its config.
        evaluator: The evaluator or its config.
        fp16 (bool): As in ``{name}``.
        max_skipped_batches (int, optional): Fail after this many skipped
            batches; None never fails. Defaults to 10.
    """


@LOOPS.register_module()
class TolerantValLoop(_SkipBadBatches, ValLoop):
    __doc__ = _loop_doc('ValLoop')
    stage = 'val'


@LOOPS.register_module()
class TolerantTestLoop(_SkipBadBatches, TestLoop):
    __doc__ = _loop_doc('TestLoop')
    stage = 'test'
