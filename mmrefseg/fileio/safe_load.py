# Copyright (c) mmrefseg contributors.
"""Every pickle or tensor file mmrefseg reads goes through here.

* :func:`load_plain_pickle`: REFER / gRefCOCO ``.p`` annotation files,
  through the :data:`~.restricted_unpickler.PLAIN_DATA` allow-list.
* :func:`load_torch_file`: MMEngine checkpoints (``load_from``,
  ``--resume``, ``mmengine.runner.load_checkpoint``; installed as MMEngine's
  loader for local paths by :func:`install_mmengine_checkpoint_loader`),
  and, through :func:`load_weights_file`, third-party weight shards read by
  the converters.

A torch file is tried in this order, and nothing else:

1. safetensors, when the *bytes* are safetensors (a pickle or zip named
   ``.safetensors`` is refused: that name promises no pickle at all);
2. ``torch.load(weights_only=True)``;
3. only if torch refuses a global, ``torch.load`` with a pickle module whose
   ``Unpickler`` *and* ``load`` admit the
   :data:`~.restricted_unpickler.CHECKPOINT` allow-list (torch's legacy
   reader unpickles the magic number with ``pickle_module.load`` first).

Anything else raises :class:`~.errors.UnsafeFileError` naming the file and
the global, before it is called. Empty, text, truncated and corrupt files
raise :class:`~.errors.NotACheckpointError` naming the file.

``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` does not weaken any of this: every
``torch.load`` here passes ``weights_only`` explicitly.
"""
import os.path as osp
import pickle
import re
import struct
import warnings
from typing import Any, Dict, Optional

import torch

from . import file_format as fmt
from .errors import NotACheckpointError, UnsafeFileError
from .restricted_unpickler import (
    CHECKPOINT,
    PLAIN_DATA,
    RestrictedUnpickler,
    restricted_pickle_module,
)

# What torch.load raises for truncated or corrupt bytes (the unpickler's own
# errors, struct/zip reader errors, bad opcodes and memo keys).
_CORRUPT_TYPES = (EOFError, pickle.UnpicklingError, struct.error, KeyError,
                  IndexError, UnicodeDecodeError, OverflowError)
_CORRUPT_RUNTIME = re.compile(
    r'PytorchStreamReader|magic number|protocol version|corrupt|truncated|'
    r'unexpected EOF|zip archive', re.IGNORECASE)


def _existing(path: str) -> str:
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    return path


def load_plain_pickle(path: str) -> Any:
    """Load a pickle that may hold only plain containers and scalars.

    Python-2 pickles (protocols 0-2, as the REFER toolkit wrote them) load
    too: py2 ``str`` becomes ``str`` through latin-1.

    Args:
        path: the pickle file.

    Returns:
        The unpickled dicts, lists, tuples, sets, str, bytes, int, float,
        bool or None.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeFileError: the pickle references a refused global (named in
            the message together with the file).
        ValueError: the file is empty, a zip/safetensors file, or not a
            readable pickle ("not a pickle").
    """
    path = _existing(path)
    kind = fmt.sniff_format(path)
    if kind in (fmt.EMPTY, fmt.ZIP, fmt.SAFETENSORS):
        size, head = fmt.describe_head(path)
        raise ValueError(f'{path} is not a pickle: it is {kind} ({size} '
                         f'bytes, starting with {head!r})')
    with open(path, 'rb') as f:
        try:
            obj = RestrictedUnpickler(f, path, PLAIN_DATA).load()
        except UnsafeFileError:
            raise
        except Exception as err:  # garbled bytes raise many types
            raise ValueError(f'{path} is not a pickle, or it is truncated: '
                             f'{type(err).__name__}: {err}') from err
        if f.read(1):
            # e.g. torch's legacy format: several pickles back to back.
            raise ValueError(f'{path} is not a single pickle: bytes follow '
                             'the first object (a torch.save file?)')
    return obj


def check_safetensors(path: str) -> None:
    """Refuse a ``.safetensors``-named file whose bytes are not safetensors.

    For readers that open safetensors lazily (``safe_open``) instead of
    going through :func:`load_torch_file`.

    Raises:
        UnsafeFileError: the bytes are a pickle or a zip (torch.save).
        NotACheckpointError: the bytes are anything else but safetensors.
    """
    kind = fmt.sniff_format(path)
    if kind == fmt.SAFETENSORS:
        _check_safetensors_extent(path)
        return
    if kind in (fmt.PICKLE, fmt.ZIP):
        raise UnsafeFileError(
            f'Refusing to load {path}: it is named .safetensors but holds a '
            f'{kind} (torch.save or pickle.dump), which could run code. A '
            'safetensors file holds only a JSON header and raw tensors.')
    raise fmt.not_a_checkpoint(path, f'named .safetensors but {kind}')


def _check_safetensors_extent(path: str) -> None:
    """The header parses and its tensors end where the file ends."""
    import json
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        (header_size, ) = struct.unpack('<Q', f.read(8))
        try:
            header = json.loads(f.read(header_size))
            end = max((int(v['data_offsets'][1]) for k, v in header.items()
                       if k != '__metadata__'), default=0)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise fmt.not_a_checkpoint(
                path, f'a safetensors file with a corrupt header ({err})'
            ) from err
    if 8 + header_size + end != size:
        raise fmt.not_a_checkpoint(
            path, f'a truncated or padded safetensors file (its header '
            f'needs {8 + header_size + end} bytes)')


def _load_safetensors(path: str, map_location: Any) -> Dict[str, Any]:
    from safetensors.torch import load_file
    device = 'cpu'
    if isinstance(map_location, (str, torch.device)):
        device = str(map_location)
    try:
        return load_file(path, device=device)
    except Exception as err:  # SafetensorError is not importable by name
        if type(err).__name__ != 'SafetensorError':
            raise
        raise fmt.not_a_checkpoint(
            path, f'truncated or corrupt safetensors ({err})') from err


def _corrupt(path: str, err: BaseException) -> Optional[NotACheckpointError]:
    """A NotACheckpointError if ``err`` means the bytes are damaged."""
    if isinstance(err, UnsafeFileError):
        return None
    if isinstance(err, _CORRUPT_TYPES) or (
            isinstance(err, RuntimeError)
            and _CORRUPT_RUNTIME.search(str(err))):
        first = str(err).strip().splitlines()[0] if str(err).strip() else ''
        if 'magic number' in first:
            why = 'a pickle without torch.save\'s magic number'
        else:
            why = 'truncated or corrupt'
        return fmt.not_a_checkpoint(
            path, f'{why} ({type(err).__name__}: {first[:200]})')
    return None


def load_torch_file(path: str,
                    map_location: Optional[Any] = None,
                    mmap: bool = False) -> Any:
    """Load a checkpoint or weights file without running code from it.

    Args:
        path: a ``.pth``/``.bin``/``.safetensors`` file (the bytes decide
            the reader, not the name).
        map_location: as in :func:`torch.load`; for safetensors only a
            device string or ``torch.device`` is honoured (else CPU).
        mmap: memory-map zip-format files (pages are read on demand).

    Returns:
        The loaded object (a state dict, or MMEngine's checkpoint dict).

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeFileError: the file needs a global outside the checkpoint
            allow-list, is a TorchScript archive, or is a pickle/zip named
            ``.safetensors``; raised before anything in it is called.
        NotACheckpointError: empty, text, truncated or corrupt file.
    """
    path = _existing(path)
    kind = fmt.sniff_format(path)
    if path.endswith('.safetensors') or kind == fmt.SAFETENSORS:
        check_safetensors(path)
        return _load_safetensors(path, map_location)
    if kind == fmt.EMPTY:
        raise fmt.not_a_checkpoint(path, 'the file is empty')
    if kind == fmt.TAR:
        raise fmt.not_a_checkpoint(
            path, 'a tar archive (the torch < 0.4 format is not supported; '
            're-save it with a current torch)')
    if kind == fmt.UNKNOWN:
        raise fmt.not_a_checkpoint(
            path, 'neither a zip archive, a pickle nor safetensors')
    if kind == fmt.ZIP and fmt.is_torchscript_zip(path):
        raise UnsafeFileError(
            f'Refusing to load {path}: it is a TorchScript archive '
            '(torch.jit.save), which torch.load would run through '
            'torch.jit.load. Load TorchScript with torch.jit.load only if '
            'you trust it.')
    mmap = mmap and kind == fmt.ZIP
    try:
        with warnings.catch_warnings():
            # A plain pickle (protocol 4/5) makes the weights-only reader
            # warn about its protocol before it fails anyway.
            warnings.filterwarnings('ignore', 'Detected pickle protocol')
            return torch.load(path, map_location=map_location,
                              weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        pass  # a refused global, or damaged bytes: the allow-list decides
    except Exception as err:
        damaged = _corrupt(path, err)
        if damaged is None:
            raise
        raise damaged from err
    try:
        return torch.load(path, map_location=map_location,
                          weights_only=False, mmap=mmap,
                          pickle_module=restricted_pickle_module(
                              path, CHECKPOINT))
    except Exception as err:
        damaged = _corrupt(path, err)
        if damaged is None:
            raise
        raise damaged from err


def load_weights_file(path: str) -> Dict[str, torch.Tensor]:
    """Load one third-party weights shard as a state dict, on CPU.

    Args:
        path: a ``.safetensors`` file or a torch pickle (``.bin``/``.pth``).

    Returns:
        dict[str, Tensor]: the tensors (zip-format pickles are
        memory-mapped, so pages are read on demand).

    Raises:
        UnsafeFileError, NotACheckpointError: see :func:`load_torch_file`.
        ValueError: the file holds something other than str -> Tensor.
    """
    obj = load_torch_file(path, map_location='cpu', mmap=True)
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in obj.items()):
        raise ValueError(f'{path} holds a {type(obj).__name__}, expected a '
                         'state dict (str -> Tensor).')
    return obj


def install_mmengine_checkpoint_loader() -> None:
    """Make MMEngine load local checkpoints through :func:`load_torch_file`.

    Registers it for the empty prefix (local paths) of MMEngine's
    ``CheckpointLoader``, which ``Runner.load_checkpoint``,
    ``Runner.resume`` and ``mmengine.runner.load_checkpoint`` all use.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any) -> Any:
        return load_torch_file(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
