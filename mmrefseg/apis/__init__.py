# Copyright (c) mmrefseg contributors.
from .runner import add_checkpoint_match_hook, build_runner, resolve_work_dir

__all__ = ['add_checkpoint_match_hook', 'build_runner', 'resolve_work_dir']
