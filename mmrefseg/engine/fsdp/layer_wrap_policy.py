# Copyright (c) mmrefseg contributors.
"""FSDP auto-wrap policy: one FSDP unit per transformer layer.

Registered in MMEngine's root ``FUNCTIONS`` registry, where
``MMFullyShardedDataParallel`` looks ``auto_wrap_policy`` names up::

    model_wrapper=dict(type='MMFullyShardedDataParallel',
                       auto_wrap_policy='mmrefseg_layer_wrap_policy')
"""
import torch.nn as nn
from mmengine.registry import FUNCTIONS
from transformers.modeling_layers import GradientCheckpointingLayer


def is_transformer_layer(module: nn.Module) -> bool:
    """Whether ``module`` is one layer of an HF ViT or LLM.

    transformers' layers (``InternVLVisionLayer``, ``LlamaDecoderLayer``,
    ``Qwen2DecoderLayer``, ...) all derive from
    ``GradientCheckpointingLayer``; they are the units FSDP should gather one
    at a time, and the units activation checkpointing recomputes.

    Args:
        module (nn.Module): Any module.

    Returns:
        bool: True for a transformer layer.
    """
    return isinstance(module, GradientCheckpointingLayer)


@FUNCTIONS.register_module(name='mmrefseg_layer_wrap_policy')
def layer_wrap_policy(module: nn.Module, recurse: bool,
                      nonwrapped_numel: int) -> bool:
    """FSDP's callable auto-wrap policy protocol.

    Args:
        module (nn.Module): The candidate module.
        recurse (bool): True when FSDP asks whether to look inside
            ``module``; False when it asks whether to wrap it.
        nonwrapped_numel (int): Parameters not yet wrapped (unused).

    Returns:
        bool: Always recurse; wrap transformer layers. The rest (embeddings,
        projector, heads) joins the root unit.
    """
    if recurse:
        return True
    return is_transformer_layer(module)
