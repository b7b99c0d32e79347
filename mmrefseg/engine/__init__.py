# Copyright (c) mmrefseg contributors.
# mmseg's hooks (e.g. SegVisualizationHook) live in the parent registry;
# importing them here makes them visible to configs with default_scope
# 'mmrefseg' without custom_imports.
import mmseg.engine  # noqa: F401

from .fsdp import ShardedGradOptimWrapper, layer_wrap_policy
from .hooks import (
                    CheckpointMatchHook,
                    CheckpointMismatchError,
                    RefSegVisualizationHook,
                    TrainProgressBarHook,
)
from .loops import TolerantTestLoop, TolerantValLoop
from .optimizers import AutocastOptimWrapper

__all__ = [
    'AutocastOptimWrapper', 'CheckpointMatchHook', 'CheckpointMismatchError',
    'RefSegVisualizationHook', 'ShardedGradOptimWrapper', 'TolerantTestLoop',
    'TolerantValLoop', 'TrainProgressBarHook', 'layer_wrap_policy'
]
