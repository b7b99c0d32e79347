# Copyright (c) mmrefseg contributors.
"""Draw referring-segmentation predictions during validation and test."""
import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmrefseg.registry import HOOKS


@HOOKS.register_module()
class RefSegVisualizationHook(Hook):
    """Paint predictions with :class:`RefSegLocalVisualizer`.

    Unlike MMSeg's ``SegVisualizationHook`` it writes one picture per sample
    (one per expression under ``test_grouping='expression'``) named after
    the image and the expression ids, so expressions of one image never
    overwrite each other, and each picture carries its phrases.

    In validation only every ``interval``-th batch is drawn (to the
    visualizer's backends); in test every sample is drawn once ``draw`` is
    on (``tools/test.py --show-dir DIR`` turns it on and writes to DIR).

    Args:
        draw (bool): Draw at all. Defaults to False (drawing costs time).
        interval (int): Validation batches between drawings.
        show (bool): Show each picture in a window.
        wait_time (float): Seconds a shown picture stays.
        out_dir (str, optional): Write test pictures here as PNG files
            (``<image stem>_<sentence ids>.png``); None sends them to the
            visualizer's backends.
        backend_args (dict, optional): MMEngine file backend arguments.
    """

    priority = 'NORMAL'

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 show: bool = False,
                 wait_time: float = 0.,
                 out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        self.draw = draw
        self.interval = interval
        self.show = show
        self.wait_time = wait_time
        self.out_dir = out_dir
        self.backend_args = backend_args
        self._test_index = 0

    def _image(self, data_sample) -> 'object':
        img_bytes = get(data_sample.img_path, backend_args=self.backend_args)
        return mmcv.imfrombytes(img_bytes, channel_order='rgb')

    @staticmethod
    def file_stem(data_sample, index: int) -> str:
        """``<image stem>_<sentence ids>`` (or the running index)."""
        stem = osp.splitext(osp.basename(data_sample.img_path))[0]
        ids = data_sample.metainfo.get('sent_ids')
        if ids:
            return f'{stem}_' + '-'.join(str(i) for i in ids)
        return f'{stem}_{index}'

    def _draw(self, runner: Runner, data_sample, step: int,
              out_file: Optional[str]) -> None:
        runner.visualizer.add_datasample(
            osp.basename(data_sample.img_path), self._image(data_sample),
            data_sample=data_sample, show=self.show,
            wait_time=self.wait_time, out_file=out_file, step=step)

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence) -> None:
        if not self.draw or not outputs:
            return
        if self.every_n_inner_iters(batch_idx, self.interval):
            self._draw(runner, outputs[0], runner.iter, None)

    def after_test_iter(self, runner: Runner, batch_idx: int,
                        data_batch: dict, outputs: Sequence) -> None:
        if not self.draw:
            return
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
        for sample in outputs:
            self._test_index += 1
            out_file = None
            if self.out_dir is not None:
                out_file = osp.join(
                    self.out_dir,
                    self.file_stem(sample, self._test_index) + '.png')
            self._draw(runner, sample, self._test_index, out_file)
