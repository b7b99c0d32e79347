# Copyright (c) mmrefseg contributors.
from .internvl import InternVLBackbone
from .mllm_outputs import MLLMOutputs

__all__ = ['InternVLBackbone', 'MLLMOutputs']
