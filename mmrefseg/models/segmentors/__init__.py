# Copyright (c) mmrefseg contributors.
from .ref_segmentor import RefSegmentor
from .text_encoder_decoder import TextEncoderDecoder

__all__ = ['RefSegmentor', 'TextEncoderDecoder']
