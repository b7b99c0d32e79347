# Copyright (c) mmrefseg contributors.
from .setup_env import register_all_modules
from .tokenizer import build_tokenizer

__all__ = ['build_tokenizer', 'register_all_modules']
