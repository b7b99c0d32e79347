# Copyright (c) mmrefseg contributors.
from .conversation import BuildConversation, InternVLChatFormat
from .formatting import PackRefSegInputs
from .internvl_image import InternVLImageTransform
from .loading import LoadRefImage, LoadRefMasks

__all__ = [
    'BuildConversation', 'InternVLChatFormat', 'PackRefSegInputs',
    'InternVLImageTransform', 'LoadRefImage', 'LoadRefMasks'
]
