# Copyright (c) mmrefseg contributors.
from .conversation import BuildConversation, InternVLChatFormat
from .formatting import PackRefSegInputs
from .internvl_image import InternVLImageTransform
from .loading import LoadRefImage, LoadRefMasks
from .text4seg_answer import Text4SegAnswer

__all__ = [
    'BuildConversation', 'InternVLChatFormat', 'PackRefSegInputs',
    'InternVLImageTransform', 'LoadRefImage', 'LoadRefMasks', 'Text4SegAnswer'
]
