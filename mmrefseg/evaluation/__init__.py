# Copyright (c) mmrefseg contributors.
import mmseg.evaluation  # noqa: F401  (parent registry entries)

from .metrics import RefSegMetric, empty_state, merge_states

__all__ = ['RefSegMetric', 'empty_state', 'merge_states']
