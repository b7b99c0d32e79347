# Copyright (c) mmrefseg contributors.
"""Building blocks shared by necks and heads (not registered components)."""
from .dysample import DySample
from .transformer_decoder_block import TransformerDecoderBlock

__all__ = ['DySample', 'TransformerDecoderBlock']
