# Copyright (c) mmrefseg contributors.
"""Converters from released checkpoints to mmrefseg / native transformers.

* :mod:`.internvl_chat`: InternVL chat checkpoints -> native InternVL.
* :mod:`.mllmseg`: released MLLMSeg -> RefSegmentor (DSFF + light decoder).
* :mod:`.self1e`: released SELF1E -> RefSegmentor (Self1EHead).

Everything reads third-party weights through :mod:`mmrefseg.fileio`
(safetensors, ``torch.load(weights_only=True)``, an allow-list; see
:mod:`.weights_io`) and checks key coverage strictly (:mod:`.key_mapping`).
"""
from .key_mapping import KeyCoverageError, Rule, mapping_table, plan_mapping
from .weights_io import (
                         ShardedSafetensorsWriter,
                         UnsafeWeightsError,
                         WeightSource,
                         load_weights_file,
)

__all__ = [
    'KeyCoverageError', 'Rule', 'ShardedSafetensorsWriter',
    'UnsafeWeightsError', 'WeightSource', 'load_weights_file',
    'mapping_table', 'plan_mapping'
]
