# Copyright (c) mmrefseg contributors.
"""``init_model`` / ``inference_model``: the one-liners of ``mmseg.apis``.

.. code-block:: python

    from mmrefseg.apis import inference_model, init_model

    model = init_model('configs/self1e/self1e_tiny_synth.py', 'iter_1700.pth',
                       device='cpu')
    pred = inference_model(model, 'demo.jpg', ['the red circle', 'a star'])
    pred['masks'].shape        # (2, H, W) bool
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .refseg_inferencer import ImageInput, RefSegInferencer


def init_model(config, checkpoint: Optional[str] = None,
               device: Optional[str] = None,
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a model from a config (file, ``Config`` or exported folder)
    and load a checkpoint.

    Args:
        config (str | Config): Config file, config, or an exported folder.
        checkpoint (str, optional): Checkpoint; random weights if None.
        device (str, optional): 'cpu', 'cuda', ...; default CUDA if any.
        cfg_options (dict, optional): Config overrides.

    Returns:
        nn.Module: The model in eval mode, with ``model.cfg`` set.
    """
    inferencer = RefSegInferencer(config, checkpoint, device, cfg_options,
                                  show_progress=False)
    model = inferencer.model
    model.refseg_inferencer = inferencer
    return model


def inference_model(model: torch.nn.Module, image: ImageInput,
                    phrases: Union[str, Sequence[str]]) -> dict:
    """Segment the phrases in one image with a model from ``init_model``.

    Args:
        model (nn.Module): From :func:`init_model`.
        image (str | np.ndarray): Path or H x W x 3 uint8 RGB array.
        phrases (str | Sequence[str]): One or more phrases.

    Returns:
        dict: The per-image prediction (``phrases``, ``masks`` bool
        [K, H, W], ``scores``, ``no_target``, ``boxes``, ``areas``,
        ``parse_status``).
    """
    inferencer = getattr(model, 'refseg_inferencer', None)
    if inferencer is None:
        raise ValueError('inference_model needs a model built by '
                         'mmrefseg.apis.init_model')
    if not isinstance(image, (str, np.ndarray)):
        raise TypeError('image must be a path or an array, got '
                        f'{type(image).__name__}')
    return inferencer(image, phrases)['predictions'][0]
