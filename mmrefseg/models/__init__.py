# Copyright (c) mmrefseg contributors.
import mmseg.models  # noqa: F401  (parent registry entries)

from .backbones import *  # noqa: F401,F403
from .data_preprocessor import RefSegDataPreProcessor
from .heads import *  # noqa: F401,F403
from .image_text_data_preprocessor import ImageTextDataPreProcessor
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403

__all__ = ['RefSegDataPreProcessor', 'ImageTextDataPreProcessor']
