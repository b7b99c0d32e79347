# Copyright (c) mmrefseg contributors.
from .layer_wrap_policy import is_transformer_layer, layer_wrap_policy
from .sharded_optim_wrapper import ShardedGradOptimWrapper

__all__ = ['ShardedGradOptimWrapper', 'is_transformer_layer',
           'layer_wrap_policy']
