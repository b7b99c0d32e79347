# Copyright (c) mmrefseg contributors.
import mmseg.datasets  # noqa: F401  (parent registry entries)

from .grefcoco import GRefCOCODataset
from .mixed_refer_dataset import MixedReferDataset
from .refcoco import RefCOCODataset
from .refer_base import BaseReferDataset
from .refer_io import (
                       UnsafePickleError,
                       safe_load_pickle,
                       segmentation_to_mask,
                       union_mask,
)
from .refseg_jsonl import RefSegJsonlDataset
from .synthetic import generate_synthetic_refer
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseReferDataset', 'GRefCOCODataset', 'MixedReferDataset',
    'RefCOCODataset', 'RefSegJsonlDataset',
    'UnsafePickleError', 'generate_synthetic_refer', 'safe_load_pickle',
    'segmentation_to_mask', 'union_mask'
]
