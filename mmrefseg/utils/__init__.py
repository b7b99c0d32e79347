# Copyright (c) mmrefseg contributors.
from .checkpoint_loading import (
                                 UnsafeCheckpointError,
                                 install_mmengine_checkpoint_loader,
                                 load_checkpoint_file,
)
from .setup_env import register_all_modules
from .tokenizer import build_tokenizer

__all__ = [
    'UnsafeCheckpointError', 'build_tokenizer',
    'install_mmengine_checkpoint_loader', 'load_checkpoint_file',
    'register_all_modules'
]
