# Copyright (c) mmrefseg contributors.
from .inference import inference_model, init_model
from .prediction_io import (masks_to_rles, rles_to_masks, summarize_masks,
                            write_prediction)
from .refseg_inferencer import RefSegInferencer
from .runner import add_checkpoint_match_hook, build_runner, resolve_work_dir

__all__ = [
    'RefSegInferencer', 'add_checkpoint_match_hook', 'build_runner',
    'inference_model', 'init_model', 'masks_to_rles', 'resolve_work_dir',
    'rles_to_masks', 'summarize_masks', 'write_prediction'
]
