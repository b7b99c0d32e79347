# Copyright (c) mmrefseg contributors.
"""Safe loading of checkpoint files for MMEngine (the only shim we keep).

torch >= 2.6 loads with ``weights_only=True`` by default. MMEngine 0.10.7
checkpoints pickle a ``HistoryBuffer`` (with bound statistics methods, i.e.
``getattr``) and numpy objects, so ``load_from``/``resume`` fail. The usual
workaround, ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, turns off the protection
for *every* ``torch.load`` in the process, third-party ``.bin`` files
included.

Instead, :func:`load_checkpoint_file` (registered as MMEngine's loader for
local paths) never unpickles arbitrary objects:

1. ``.safetensors`` files are read with safetensors;
2. everything else first goes through ``torch.load(weights_only=True)``;
3. only if that refuses, the file is unpickled with an allow-list of exactly
   what MMEngine writes (tensors, storages, OrderedDict, numpy arrays,
   dtypes and scalars, ``HistoryBuffer``), where ``getattr`` may only fetch
   a public statistics method of a ``HistoryBuffer``. Any other global is
   refused with an error naming the file and the global, before anything
   runs.
"""
import os.path as osp
import pickle
from typing import Any, Optional

import torch

_ALLOWED = {
    ('collections', 'OrderedDict'),
    ('_codecs', 'encode'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer'),
}
_TORCH_REBUILDERS = {
    '_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_parameter',
    '_rebuild_parameter_with_state', '_rebuild_device_tensor_from_numpy',
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references a global outside the allow-list."""


def _safe_getattr(obj: Any, name: str) -> Any:
    from mmengine.logging import HistoryBuffer
    # HistoryBuffer pickles its statistics methods by qualified name, i.e.
    # getattr(HistoryBuffer, 'min'); nothing else may use getattr, and only
    # public functions defined on HistoryBuffer itself are handed out.
    owner_ok = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if owner_ok and not name.startswith('_') and \
            callable(vars(HistoryBuffer).get(name)):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'getattr({obj!r:.60}, {name!r}) is not allowed in a checkpoint')


def _make_pickle_module(filename: str):
    """A ``pickle``-like module whose Unpickler only admits the allow-list."""

    class RestrictedUnpickler(pickle.Unpickler):

        def find_class(self, module: str, name: str) -> Any:
            if module in ('__builtin__', 'builtins') and name == 'getattr':
                return _safe_getattr
            if (module, name) in _ALLOWED:
                return super().find_class(module, name)
            if module == 'torch._utils' and name in _TORCH_REBUILDERS:
                return super().find_class(module, name)
            if module == 'torch' and name.endswith('Storage'):
                return super().find_class(module, name)
            if module == 'numpy.dtypes' and name.endswith('DType'):
                return super().find_class(module, name)
            raise UnsafeCheckpointError(
                f'Refusing to load {filename}: it references the global '
                f'{module}.{name}, which is not something MMEngine or a '
                'weights file contains. If you trust this file, load it '
                'yourself with torch.load(..., weights_only=False).')

    class PickleModule:
        Unpickler = RestrictedUnpickler
        load = pickle.load
        __name__ = 'mmrefseg_restricted_pickle'

    return PickleModule


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint without executing code from it.

    Args:
        filename: path of a ``.pth``/``.bin``/``.safetensors`` file.
        map_location: as in :func:`torch.load`.

    Returns:
        The loaded object (usually a dict with ``state_dict``).

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file needs globals outside the allow-list.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_file(filename, device=device)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError:
        pass
    return torch.load(filename, map_location=map_location, weights_only=False,
                      pickle_module=_make_pickle_module(filename))


def install_mmengine_checkpoint_loader() -> None:
    """Make MMEngine load local checkpoints through the safe loader."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        return load_checkpoint_file(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
