# Copyright (c) mmrefseg contributors.
from .mllm_outputs import MLLMOutputs
from .refseg_data_sample import RefSegDataSample

__all__ = ['MLLMOutputs', 'RefSegDataSample']
