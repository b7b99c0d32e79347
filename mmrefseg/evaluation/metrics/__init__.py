# Copyright (c) mmrefseg contributors.
from .refseg_metric import RefSegMetric, empty_state, merge_states

__all__ = ['RefSegMetric', 'empty_state', 'merge_states']
