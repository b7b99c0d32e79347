# Copyright (c) mmrefseg contributors.
from .refseg_visualization_hook import RefSegVisualizationHook
from .time_budget_eval_hook import TimeBudgetEvalHook

__all__ = ['RefSegVisualizationHook', 'TimeBudgetEvalHook']
