# Copyright (c) mmrefseg contributors.
from .metrics import RefSegMetric, empty_state, merge_states

__all__ = ['RefSegMetric', 'empty_state', 'merge_states']
