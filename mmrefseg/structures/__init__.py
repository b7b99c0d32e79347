# Copyright (c) mmrefseg contributors.
from .refseg_data_sample import RefSegDataSample

__all__ = ['RefSegDataSample']
