# Copyright (c) mmrefseg contributors.
from .dsff import DSFFNeck, DySample, TransformerDecoderBlock

__all__ = ['DSFFNeck', 'DySample', 'TransformerDecoderBlock']
