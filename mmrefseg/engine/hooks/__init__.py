# Copyright (c) mmrefseg contributors.
from .refseg_visualization_hook import RefSegVisualizationHook
from .time_budget_eval_hook import TimeBudgetEvalHook
from .train_progress_bar_hook import TrainProgressBarHook

__all__ = [
    'RefSegVisualizationHook', 'TimeBudgetEvalHook', 'TrainProgressBarHook'
]
