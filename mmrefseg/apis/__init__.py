# Copyright (c) mmrefseg contributors.
from .inference import inference_model, init_model
from .prediction_io import (
                            masks_to_rles,
                            rles_to_masks,
                            summarize_masks,
                            write_prediction,
)
from .refseg_inferencer import RefSegInferencer
from .runner import (
                            add_checkpoint_match_hook,
                            build_runner,
                            finish_distributed,
                            prepare_cpu_distributed,
                            resolve_work_dir,
                            use_tolerant_eval_loops,
)

__all__ = [
    'RefSegInferencer', 'add_checkpoint_match_hook', 'build_runner',
    'finish_distributed',
    'inference_model', 'init_model', 'masks_to_rles',
    'prepare_cpu_distributed', 'resolve_work_dir', 'rles_to_masks',
    'summarize_masks', 'use_tolerant_eval_loops', 'write_prediction'
]
