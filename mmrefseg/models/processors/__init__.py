# Copyright (c) mmrefseg contributors.
from .internvl_processor import (
                                 IGNORE_INDEX,
                                 InternVLChatFormat,
                                 InternVLProcessor,
)
from .prompts import PROMPT_STYLES, REJ, SEG, count_slots

__all__ = [
    'IGNORE_INDEX', 'InternVLChatFormat', 'InternVLProcessor',
    'PROMPT_STYLES', 'REJ', 'SEG', 'count_slots'
]
