# Copyright (c) mmrefseg contributors.
from .checkpoint_match_hook import (CheckpointMatchHook,
                                    CheckpointMismatchError,
                                    compare_state_dict)
from .time_budget_eval_hook import TimeBudgetEvalHook

__all__ = [
    'CheckpointMatchHook', 'CheckpointMismatchError', 'TimeBudgetEvalHook',
    'compare_state_dict'
]
