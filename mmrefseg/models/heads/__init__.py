# Copyright (c) mmrefseg contributors.
from .light_mask_decoder import LightMaskDecoderHead

__all__ = ['LightMaskDecoderHead']
