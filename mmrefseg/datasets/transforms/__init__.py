# Copyright (c) mmrefseg contributors.
from .conversation import BuildConversation, InternVLChatFormat
from .formatting import PackRefSegInputs
from .internvl_image import InternVLImageTransform
from .loading import LoadRefImage, LoadRefMasks
from .pack_ref_image_inputs import PackRefImageInputs
from .text4seg_answer import Text4SegAnswer

__all__ = [
    'BuildConversation', 'InternVLChatFormat', 'PackRefSegInputs',
    'InternVLImageTransform', 'LoadRefImage', 'LoadRefMasks',
    'PackRefImageInputs', 'Text4SegAnswer'
]
