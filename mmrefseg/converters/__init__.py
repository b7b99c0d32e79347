# Copyright (c) mmrefseg contributors.
"""Converters from released checkpoints to mmrefseg / native transformers.

* :mod:`.internvl_chat`: InternVL chat checkpoints -> native InternVL.
* :mod:`.mllmseg`: released MLLMSeg -> RefSegmentor (DSFF + light decoder).
* :mod:`.self1e`: released SELF1E -> RefSegmentor (Self1EHead).
* :mod:`.refsegmentor_export`: a trained RefSegmentor -> one folder (native
  InternVL with LoRA merged, tokenizer, heads, config);
  :func:`load_exported_model` builds it back.

Everything reads third-party weights through :mod:`mmrefseg.fileio`
(safetensors, ``torch.load(weights_only=True)``, an allow-list; see
:mod:`.weights_io`) and checks key coverage strictly (:mod:`.key_mapping`).
"""
from .exported_model import load_exported_model
from .key_mapping import KeyCoverageError, Rule, mapping_table, plan_mapping
from .refsegmentor_export import export_refsegmentor
from .weights_io import (
                         ShardedSafetensorsWriter,
                         UnsafeWeightsError,
                         WeightSource,
                         load_weights_file,
)

__all__ = [
    'KeyCoverageError', 'Rule', 'ShardedSafetensorsWriter',
    'UnsafeWeightsError', 'WeightSource', 'export_refsegmentor',
    'load_exported_model', 'load_weights_file', 'mapping_table',
    'plan_mapping'
]
