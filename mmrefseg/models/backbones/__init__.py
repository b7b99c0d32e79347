# Copyright (c) mmrefseg contributors.
from mmrefseg.structures import MLLMOutputs
from .internvl import InternVLBackbone

__all__ = ['InternVLBackbone', 'MLLMOutputs']
