# Copyright (c) mmrefseg contributors.
"""Reading third-party weight shards safely and writing sharded safetensors.

Third-party checkpoints are read through :mod:`mmrefseg.fileio` only
(safetensors, ``torch.load(weights_only=True)``, then the checkpoint
allow-list): a ``.bin`` that needs any other pickle global, or a pickle named
``.safetensors``, is refused before it could run code. Sources are read one
shard (safetensors: one tensor) at a time and outputs are written shard by
shard, so converting an 8B model needs about one output shard of memory, not
the whole state dict.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from mmrefseg.fileio import (
    UnsafeFileError,
    check_safetensors,
    load_weights_file,
)

#: Old name of the refusal error, kept for importers (the same class).
UnsafeWeightsError = UnsafeFileError

Log = Callable[[str], None]

SAFE_INDEX = 'model.safetensors.index.json'
BIN_INDEX = 'pytorch_model.bin.index.json'


class WeightSource:
    """The weight files of a HF-style checkpoint directory.

    Understands ``model.safetensors``, sharded safetensors with
    ``model.safetensors.index.json``, ``pytorch_model.bin`` and sharded
    ``.bin`` with ``pytorch_model.bin.index.json``.

    Args:
        directory: the checkpoint directory.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.files = self._find_files(directory)

    @staticmethod
    def _find_files(directory: str) -> List[str]:
        for index_name in (SAFE_INDEX, BIN_INDEX):
            index = osp.join(directory, index_name)
            if osp.isfile(index):
                with open(index) as f:
                    weight_map = json.load(f)['weight_map']
                return [osp.join(directory, name)
                        for name in sorted(set(weight_map.values()))]
        for single in ('model.safetensors', 'pytorch_model.bin'):
            if osp.isfile(osp.join(directory, single)):
                return [osp.join(directory, single)]
        raise FileNotFoundError(
            f'No weights in {directory}: expected model.safetensors, '
            f'{SAFE_INDEX}, pytorch_model.bin or {BIN_INDEX}.')

    def keys_and_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Every tensor name with its shape, reading headers where possible.

        Safetensors headers are read without loading tensors; a ``.bin``
        shard is loaded (memory-mapped) to list its keys.
        """
        from safetensors import safe_open
        out: Dict[str, Tuple[int, ...]] = {}
        for path in self.files:
            if path.endswith('.safetensors'):
                check_safetensors(path)
                with safe_open(path, framework='pt') as f:
                    for key in f.keys():
                        out[key] = tuple(f.get_slice(key).get_shape())
            else:
                for key, value in load_weights_file(path).items():
                    out[key] = tuple(value.shape)
        return out

    def iter_shards(self) -> Iterator[Tuple[str, Iterator[
            Tuple[str, torch.Tensor]]]]:
        """Yield ``(file, tensors)`` per shard; ``tensors`` is lazy."""
        for path in self.files:
            yield path, self._iter_file(path)

    @staticmethod
    def _iter_file(path: str) -> Iterator[Tuple[str, torch.Tensor]]:
        if path.endswith('.safetensors'):
            from safetensors import safe_open
            check_safetensors(path)
            with safe_open(path, framework='pt', device='cpu') as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        else:
            state = load_weights_file(path)
            for key in list(state):
                yield key, state.pop(key)


class ShardedSafetensorsWriter:
    """Write tensors into numbered safetensors shards plus an index.

    Tensors are buffered until ``max_shard_bytes`` and then flushed, so at
    most about one shard is held in memory. :meth:`close` gives the shards
    their final ``model-0000i-of-0000n.safetensors`` names (a single shard
    becomes ``model.safetensors``) and writes the index.

    Args:
        directory: output directory (created).
        max_shard_bytes: flush threshold.
        log: progress callback.
    """

    def __init__(self, directory: str, max_shard_bytes: int = 2 << 30,
                 log: Optional[Log] = None) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.max_shard_bytes = max_shard_bytes
        self.log = log or (lambda msg: None)
        self._buffer: Dict[str, torch.Tensor] = {}
        self._buffer_bytes = 0
        self._shards: List[List[str]] = []
        self.total_bytes = 0
        self.keys: Dict[str, Tuple[int, ...]] = {}

    def add(self, key: str, tensor: torch.Tensor) -> None:
        if key in self.keys:
            raise KeyError(f'{key} written twice')
        tensor = tensor.detach().contiguous()
        if tensor._base is not None:
            # A view (e.g. a slice of a packed qkv): safetensors refuses
            # tensors that share memory, and it would pin the whole base.
            tensor = tensor.clone()
        nbytes = tensor.numel() * tensor.element_size()
        if self._buffer and self._buffer_bytes + nbytes > \
                self.max_shard_bytes:
            self._flush()
        self._buffer[key] = tensor
        self._buffer_bytes += nbytes
        self.total_bytes += nbytes
        self.keys[key] = tuple(tensor.shape)

    def _tmp_name(self, index: int) -> str:
        return osp.join(self.directory, f'.model-part-{index:05d}.tmp')

    def _flush(self) -> None:
        from safetensors.torch import save_file
        index = len(self._shards)
        save_file(self._buffer, self._tmp_name(index),
                  metadata={'format': 'pt'})
        self.log(f'  wrote output shard {index + 1} '
                 f'({self._buffer_bytes / 2**20:.1f} MiB, '
                 f'{len(self._buffer)} tensors)')
        self._shards.append(list(self._buffer))
        self._buffer, self._buffer_bytes = {}, 0

    def close(self) -> List[str]:
        """Flush, rename the shards and write the index; returns the files."""
        if self._buffer or not self._shards:
            self._flush()
        total = len(self._shards)
        if total == 1:
            names = ['model.safetensors']
        else:
            names = [f'model-{i + 1:05d}-of-{total:05d}.safetensors'
                     for i in range(total)]
        weight_map = {}
        for i, (keys, name) in enumerate(zip(self._shards, names)):
            os.replace(self._tmp_name(i), osp.join(self.directory, name))
            weight_map.update({key: name for key in keys})
        if total > 1:
            with open(osp.join(self.directory, SAFE_INDEX), 'w') as f:
                json.dump(dict(metadata=dict(total_size=self.total_bytes),
                               weight_map=dict(sorted(weight_map.items()))),
                          f, indent=2)
        return [osp.join(self.directory, n) for n in names]


def parse_size(text: str) -> int:
    """'2GB' / '500MB' / '1.5GiB' / '123' (bytes) -> bytes."""
    units = {'kb': 10**3, 'mb': 10**6, 'gb': 10**9, 'kib': 2**10,
             'mib': 2**20, 'gib': 2**30, 'b': 1}
    lower = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if lower.endswith(unit):
            return int(float(lower[:-len(unit)]) * units[unit])
    return int(lower)
