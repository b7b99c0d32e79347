# Copyright (c) mmrefseg contributors.
"""What safe loading costs: mmrefseg.fileio against an unrestricted load.

Writes an MMEngine-style checkpoint (a state dict of ``--mb`` MiB, an AdamW
state of the same size, a message hub with HistoryBuffers and numpy values)
and a plain state dict, each in torch's zip and legacy formats, then prints
the best of ``--repeat`` wall times (load, then read every weight once) of

* ``torch.load(weights_only=False)``: the unrestricted load (the baseline a
  hostile file exploits);
* ``load_torch_file``: what ``load_from``/``--resume`` use now (an
  MMEngine checkpoint is refused by weights_only, then read with the
  allow-list unpickler).

    python benchmarks/checkpoint_loading.py --mb 256 --repeat 3
"""
import argparse
import os.path as osp
import tempfile
import time
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from mmrefseg.fileio import load_torch_file


def _state(mb: int) -> OrderedDict:
    per = 4 * 2**20  # 4 MiB tensors, float32
    return OrderedDict((f'layer{i}.weight', torch.randn(per // 4))
                       for i in range(max(1, mb // 4)))


def _mmengine_checkpoint(state: OrderedDict) -> dict:
    buf = HistoryBuffer()
    for i in range(100):
        buf.update(float(i))
    return dict(
        meta=dict(iter=1000, seed=np.int64(0), epoch=0),
        state_dict=state,
        message_hub=dict(log_scalars={'train/loss': buf},
                         runtime_info={'lr': np.float64(1e-4)}),
        optimizer=dict(state={i: dict(exp_avg=v.clone(), step=torch.tensor(
            1.0)) for i, v in enumerate(state.values())}))


def _touch(obj: dict) -> float:
    """Read every weight (a memory-mapped tensor is read lazily)."""
    state = obj.get('state_dict', obj)
    return float(sum(v.sum() for v in state.values()))


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mb', type=int, default=256,
                        help='state dict size in MiB')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    state = _state(args.mb)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, obj in (('mmengine ckpt', _mmengine_checkpoint(state)),
                          ('state dict', state)):
            for legacy in (False, True):
                path = osp.join(tmp, 'ckpt.pth')
                torch.save(obj, path, _use_new_zipfile_serialization=not
                           legacy)
                size = osp.getsize(path) / 2**20
                unsafe = _best(lambda: _touch(torch.load(
                    path, map_location='cpu', weights_only=False)),
                    args.repeat)
                safe = _best(lambda: _touch(load_torch_file(path, 'cpu')),
                             args.repeat)
                rows.append((kind, 'legacy' if legacy else 'zip', size,
                             unsafe, safe))
    print('| file | format | MiB | torch.load(weights_only=False) s | '
          'load_torch_file s | ratio |')
    print('|---|---|---|---|---|---|')
    for kind, fmt, size, unsafe, safe in rows:
        print(f'| {kind} | {fmt} | {size:.0f} | {unsafe:.3f} | {safe:.3f} '
              f'| {safe / unsafe:.2f} |')


if __name__ == '__main__':
    main()
