# Copyright (c) mmrefseg contributors.
from .ref_segmentor import RefSegmentor

__all__ = ['RefSegmentor']
