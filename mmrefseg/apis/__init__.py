# Copyright (c) mmrefseg contributors.
from .runner import build_runner, resolve_work_dir

__all__ = ['build_runner', 'resolve_work_dir']
