# Copyright (c) mmrefseg contributors.
from .tolerant_eval_loops import TolerantTestLoop, TolerantValLoop

__all__ = ['TolerantTestLoop', 'TolerantValLoop']
