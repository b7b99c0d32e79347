# Copyright (c) mmrefseg contributors.
"""An allow-list unpickler with two profiles: plain data and checkpoints.

A pickle runs code by naming a global (``posix.system``, ``builtins.eval``,
any class with side effects) and calling it. :class:`RestrictedUnpickler`
resolves globals through a :class:`PickleProfile` and refuses everything
else in ``find_class``, i.e. before the callable is even imported, so a
``__reduce__`` payload never runs.

* :data:`PLAIN_DATA` (REFER ``.p`` files): dicts, lists, tuples, sets,
  strings, bytes, numbers, booleans and None; Python-2 pickles load through
  latin-1.
* :data:`CHECKPOINT` (what MMEngine's ``save_checkpoint`` writes and
  ``torch.load(weights_only=True)`` refuses): the plain data above plus
  tensors and storages, ``OrderedDict``, torch dtypes/sizes/devices, numpy
  arrays, dtypes and scalars, and MMEngine's ``HistoryBuffer``, whose
  statistics methods are pickled as ``getattr(HistoryBuffer, 'mean')``;
  ``getattr`` may fetch only those.

:func:`restricted_pickle_module` wraps a profile as the ``pickle_module``
argument of :func:`torch.load`. Its ``load`` is restricted as well as its
``Unpickler``: torch's legacy (non-zip) reader calls ``pickle_module.load``
for the magic number before anything else, which is where an unrestricted
``pickle.load`` would run a payload hidden in a plain pickle.
"""
import pickle
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import UnsafeFileError

Resolver = Callable[[str, str], Optional[Any]]


def _latin1_encode(text: str, encoding: str = 'latin1') -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles written by
    Python 3 use for ``bytes`` (numpy arrays included); only the latin-1
    round trip is allowed."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafeFileError(
            f'_codecs.encode called with ({type(text).__name__}, '
            f'{encoding!r}); only (str, "latin1") is allowed')
    return text.encode('latin1')


# A py2 pickle of a set names ``__builtin__.set``, a Python-3 protocol-2
# pickle of bytes ``_codecs.encode``.
_PLAIN_GLOBALS: Dict[Tuple[str, str], Any] = {
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('__builtin__', 'frozenset'): frozenset,
    ('_codecs', 'encode'): _latin1_encode,
}


@dataclass(frozen=True)
class PickleProfile:
    """What one kind of file may contain.

    Args:
        name: short name for messages (``'REFER annotation'``).
        contents: the allowed contents in words, for the refusal message.
        resolve: ``(module, name) -> object``, or None to refuse.
        hint: extra advice appended to refusals.
        encoding: default for decoding Python-2 ``str``.
    """

    name: str
    contents: str
    resolve: Resolver = field(repr=False)
    hint: str = ''
    encoding: str = 'latin1'


def _resolve_plain(module: str, name: str) -> Optional[Any]:
    return _PLAIN_GLOBALS.get((module, name))


PLAIN_DATA = PickleProfile(
    name='plain-data pickle (REFER annotations)',
    contents='dicts, lists, tuples, sets, strings, bytes, numbers, booleans '
    'and None',
    resolve=_resolve_plain)

_TORCH_REBUILDERS = frozenset({
    '_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3',
    '_rebuild_parameter', '_rebuild_parameter_with_state',
    '_rebuild_device_tensor_from_numpy'
})
# numpy >= 2 pickles through numpy._core, numpy 1.x through numpy.core.
_NUMPY_GLOBALS = frozenset({
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar')
})
_HISTORY_BUFFER = ('mmengine.logging.history_buffer', 'HistoryBuffer')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to the public methods defined on HistoryBuffer.

    MMEngine's HistoryBuffer keeps its statistics methods in an instance
    dict, and pickle writes a method as ``getattr(owner, name)``.
    """
    from mmengine.logging import HistoryBuffer
    owner_ok = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if owner_ok and not name.startswith('_') and callable(
            vars(HistoryBuffer).get(name)):
        return getattr(obj, name)
    raise UnsafeFileError(
        f'getattr({obj!r:.60}, {name!r}) is not allowed: only public '
        'methods of mmengine HistoryBuffer may be fetched by getattr')


def _resolve_checkpoint(module: str, name: str) -> Optional[Any]:
    plain = _resolve_plain(module, name)
    if plain is not None:
        return plain
    if module in ('builtins', '__builtin__') and name == 'getattr':
        return _history_buffer_getattr
    if (module, name) == ('collections', 'OrderedDict') or \
            (module, name) in _NUMPY_GLOBALS or (module, name) == \
            _HISTORY_BUFFER:
        return _import(module, name)
    if module == 'torch._utils' and name in _TORCH_REBUILDERS:
        return _import(module, name)
    if module == 'torch':
        import torch
        obj = getattr(torch, name, None)
        is_storage = isinstance(obj, type) and name.endswith('Storage')
        if is_storage or isinstance(obj, torch.dtype) or \
                obj in (torch.Size, torch.device):
            return obj
        return None
    if module == 'numpy.dtypes':
        import numpy as np
        obj = getattr(np.dtypes, name, None)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            return obj
    return None


def _import(module: str, name: str) -> Any:
    import importlib
    return getattr(importlib.import_module(module), name)


CHECKPOINT = PickleProfile(
    name='checkpoint',
    contents='tensors, storages, OrderedDicts, torch dtypes, numpy arrays, '
    'dtypes and scalars, MMEngine HistoryBuffers and plain data',
    resolve=_resolve_checkpoint,
    hint=' If you trust this file, load it yourself with torch.load(..., '
    'weights_only=False) and re-save its state dict with torch.save or '
    'safetensors.',
    encoding='utf-8')


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only through a profile.

    Args:
        file: binary file positioned at a pickle.
        source: the file's path, for messages.
        profile: what the file may contain.
        **kwargs: passed to :class:`pickle.Unpickler` (``encoding`` defaults
            to the profile's).
    """

    def __init__(self, file: Any, source: str, profile: PickleProfile,
                 **kwargs: Any) -> None:
        kwargs.setdefault('encoding', profile.encoding)
        super().__init__(file, **kwargs)
        self.source = source
        self.profile = profile

    def find_class(self, module: str, name: str) -> Any:
        obj = self.profile.resolve(module, name)
        if obj is None:
            raise UnsafeFileError(
                f'Refusing to load {self.source}: it references the global '
                f'{module}.{name}, but a {self.profile.name} may only '
                f'contain {self.profile.contents}. It was refused before that '
                f'global was imported or called.{self.profile.hint}')
        return obj

    # No persistent_load here: without one the unpickler refuses persistent
    # ids, and torch.load assigns its own storage loader to the instance
    # (a method defined on this class would shadow that assignment).


def restricted_pickle_module(source: str,
                             profile: PickleProfile) -> types.ModuleType:
    """A ``pickle``-like module for ``torch.load(pickle_module=...)``.

    Both ``Unpickler`` (subclassed by torch for the tensor data) and
    ``load`` (used by torch's legacy reader for the magic number, protocol
    and system info) are restricted to ``profile``.

    Args:
        source: the file's path, for messages.
        profile: what the file may contain.

    Returns:
        module: with ``Unpickler``, ``load`` and ``__name__``.
    """

    class Unpickler(RestrictedUnpickler):

        def __init__(self, file: Any, **kwargs: Any) -> None:
            super().__init__(file, source, profile, **kwargs)

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    module = types.ModuleType('mmrefseg_restricted_pickle')
    module.Unpickler = Unpickler
    module.load = load
    module.UnpicklingError = pickle.UnpicklingError
    return module
