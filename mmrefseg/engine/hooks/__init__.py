# Copyright (c) mmrefseg contributors.
from .checkpoint_match_hook import (
                                    CheckpointMatchHook,
                                    CheckpointMismatchError,
                                    compare_state_dict,
)
from .refseg_visualization_hook import RefSegVisualizationHook
from .train_progress_bar_hook import TrainProgressBarHook

__all__ = [
    'CheckpointMatchHook', 'CheckpointMismatchError',
    'RefSegVisualizationHook', 'TrainProgressBarHook', 'compare_state_dict'
]
