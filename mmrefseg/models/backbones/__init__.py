# Copyright (c) mmrefseg contributors.
from .internvl import InternVLBackbone, tiny_internvl_config
from .mllm_outputs import MLLMOutputs

__all__ = ['InternVLBackbone', 'MLLMOutputs', 'tiny_internvl_config']
