# Copyright (c) mmrefseg contributors.
"""Old name of the checkpoint loader; it lives in :mod:`mmrefseg.fileio`.

Kept so that code importing it keeps working: every name here *is* the
fileio object (one loader, one error type).
"""
from mmrefseg.fileio import UnsafeFileError as UnsafeCheckpointError
from mmrefseg.fileio import install_mmengine_checkpoint_loader
from mmrefseg.fileio import load_torch_file as load_checkpoint_file

__all__ = [
    'UnsafeCheckpointError', 'install_mmengine_checkpoint_loader',
    'load_checkpoint_file'
]
