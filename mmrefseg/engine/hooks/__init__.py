# Copyright (c) mmrefseg contributors.
from .time_budget_eval_hook import TimeBudgetEvalHook

__all__ = ['TimeBudgetEvalHook']
