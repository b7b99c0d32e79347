# Copyright (c) mmrefseg contributors.
from .base_ref_head import AnswerPrediction, BaseRefHead
from .light_mask_decoder import LightMaskDecoderHead
from .llm_state_aux_head import LLMStateAuxHead
from .self1e_head import Self1EHead
from .text4seg_head import Text4SegHead
from .text_query_decode_head import TextQueryDecodeHead

__all__ = [
    'AnswerPrediction', 'BaseRefHead', 'LightMaskDecoderHead',
    'LLMStateAuxHead', 'Self1EHead', 'Text4SegHead', 'TextQueryDecodeHead'
]
