# Copyright (c) mmrefseg contributors.
"""Text codecs for masks (Text4Seg semantic descriptors, R-RLE)."""
from .full_descriptors import ANSWER_FORMATS, decode_full_answer
from .rrle import (
                   BACKGROUND,
                   DEFAULT_ANSWER_TEMPLATE,
                   DEFAULT_GRID_HW,
                   build_answer,
                   encode_full_descriptors,
                   encode_irle,
                   encode_mask,
                   encode_rrle,
                   grid_to_labels,
                   mask_to_grid,
                   sanitize_label,
)
from .rrle_decode import (
                   REPAIR_KINDS,
                   STATUS_OK,
                   DecodeResult,
                   decode_answer,
                   decode_body,
)

__all__ = [
    'ANSWER_FORMATS', 'BACKGROUND', 'DEFAULT_ANSWER_TEMPLATE',
    'DEFAULT_GRID_HW', 'REPAIR_KINDS', 'STATUS_OK', 'DecodeResult',
    'build_answer', 'decode_answer', 'decode_body', 'decode_full_answer',
    'encode_full_descriptors', 'encode_irle', 'encode_mask', 'encode_rrle',
    'grid_to_labels', 'mask_to_grid', 'sanitize_label'
]
