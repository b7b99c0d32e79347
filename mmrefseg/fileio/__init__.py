# Copyright (c) mmrefseg contributors.
"""Safe reading of every pickle or tensor file mmrefseg loads.

REFER annotation pickles, MMEngine checkpoints (``load_from``,
``--resume``, ``mmengine.runner.load_checkpoint``) and the converters'
third-party weights all go through :mod:`.safe_load`; nothing reaches an
unrestricted unpickler. See ``docs/safety.md``.
"""
from .errors import NotACheckpointError, UnsafeFileError
from .file_format import sniff_format
from .restricted_unpickler import (
                                   CHECKPOINT,
                                   PLAIN_DATA,
                                   PickleProfile,
                                   RestrictedUnpickler,
                                   restricted_pickle_module,
)
from .safe_load import (
                                   check_safetensors,
                                   install_mmengine_checkpoint_loader,
                                   load_plain_pickle,
                                   load_torch_file,
                                   load_weights_file,
)

__all__ = [
    'CHECKPOINT', 'NotACheckpointError', 'PLAIN_DATA', 'PickleProfile',
    'RestrictedUnpickler', 'UnsafeFileError', 'check_safetensors',
    'install_mmengine_checkpoint_loader', 'load_plain_pickle',
    'load_torch_file', 'load_weights_file', 'restricted_pickle_module',
    'sniff_format'
]
