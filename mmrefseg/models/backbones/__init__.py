# Copyright (c) mmrefseg contributors.
from mmrefseg.structures import MLLMOutputs
from .internvl import InternVLBackbone, tiny_internvl_config

__all__ = ['InternVLBackbone', 'MLLMOutputs', 'tiny_internvl_config']
