# Copyright (c) mmrefseg contributors.
from .formatting import PackRefSegInputs
from .internvl_image import InternVLImageTransform
from .loading import LoadRefImage, LoadRefMasks
from .pack_ref_image_inputs import PackRefImageInputs
from .text4seg_answer import Text4SegAnswer
from .text_only import build_text_only_batch, text_only_sample

__all__ = [
    'PackRefSegInputs', 'InternVLImageTransform', 'LoadRefImage',
    'LoadRefMasks', 'PackRefImageInputs', 'Text4SegAnswer',
    'build_text_only_batch', 'text_only_sample'
]
