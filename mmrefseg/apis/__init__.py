# Copyright (c) mmrefseg contributors.
from .runner import (build_runner, prepare_cpu_distributed, resolve_work_dir,
                     use_tolerant_eval_loops)

__all__ = [
    'build_runner', 'prepare_cpu_distributed', 'resolve_work_dir',
    'use_tolerant_eval_loops'
]
