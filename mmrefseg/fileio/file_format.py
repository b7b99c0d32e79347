# Copyright (c) mmrefseg contributors.
"""Tell a file's container from its first bytes, without unpickling it.

Readers decide what to do from the bytes, not from the file name: a pickle
named ``.safetensors`` is still a pickle, and text, empty or truncated
files get a clear "not a checkpoint" instead of whatever the unpickler
happens to raise (``EOFError``, ``IndexError``, ``KeyError``...).
"""
import os
import struct
import zipfile
from typing import Tuple

from .errors import NotACheckpointError

EMPTY = 'empty'
SAFETENSORS = 'safetensors'
ZIP = 'zip'  # torch.save's default format (and TorchScript archives)
PICKLE = 'pickle'  # a protocol >= 2 pickle: torch's legacy format or plain
TAR = 'tar'  # torch < 0.4
UNKNOWN = 'unknown'

# torch.jit.save writes these next to the pickle; torch.load hands such an
# archive to torch.jit.load when weights_only=False.
_TORCHSCRIPT_RECORDS = ('constants.pkl', 'code/')


def sniff_format(path: str) -> str:
    """The container of ``path``, from its first bytes.

    Args:
        path: an existing file.

    Returns:
        str: one of ``'empty'``, ``'safetensors'``, ``'zip'``,
        ``'pickle'``, ``'tar'``, ``'unknown'``.
    """
    size = os.path.getsize(path)
    if size == 0:
        return EMPTY
    with open(path, 'rb') as f:
        head = f.read(16)
        f.seek(257)
        tar_magic = f.read(5)
    if head[:4] in (b'PK\x03\x04', b'PK\x05\x06'):
        return ZIP
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if len(head) >= 10 and head[8:9] == b'{':
        # safetensors: u64 little-endian header size, then a JSON header.
        (header_size, ) = struct.unpack('<Q', head[:8])
        if 2 <= header_size <= size - 8:
            return SAFETENSORS
    if tar_magic == b'ustar':
        return TAR
    return UNKNOWN


def describe_head(path: str, limit: int = 24) -> Tuple[int, bytes]:
    """``(size in bytes, first bytes)`` of a file, for messages."""
    with open(path, 'rb') as f:
        return os.path.getsize(path), f.read(limit)


def not_a_checkpoint(path: str, why: str) -> NotACheckpointError:
    """A :class:`NotACheckpointError` naming the file, its size and head."""
    size, head = describe_head(path)
    return NotACheckpointError(
        f'{path} is not a checkpoint: {why} ({size} bytes, starting with '
        f'{head!r}). Expected a torch.save file (zip or legacy pickle) or '
        'safetensors.')


def is_torchscript_zip(path: str) -> bool:
    """Whether a zip archive is a TorchScript module (``torch.jit.save``).

    Raises:
        NotACheckpointError: the zip is truncated or corrupt.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise not_a_checkpoint(
            path, f'a truncated or corrupt zip archive ({err})') from err
    return any(
        name.split('/', 1)[-1].startswith(record) for name in names
        for record in _TORCHSCRIPT_RECORDS)
