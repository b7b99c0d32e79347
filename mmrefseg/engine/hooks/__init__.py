# Copyright (c) mmrefseg contributors.
from .checkpoint_match_hook import (
                                    CheckpointMatchHook,
                                    CheckpointMismatchError,
                                    compare_state_dict,
)
from .rank_zero_logger_hook import RankZeroLoggerHook
from .refseg_visualization_hook import RefSegVisualizationHook
from .train_progress_bar_hook import TrainProgressBarHook

__all__ = [
    'CheckpointMatchHook', 'CheckpointMismatchError', 'RankZeroLoggerHook',
    'RefSegVisualizationHook', 'TrainProgressBarHook', 'compare_state_dict'
]
