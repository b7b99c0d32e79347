# Copyright (c) mmrefseg contributors.
"""A user's image and phrases -> a batch through a model's test pipeline."""
from typing import List, Sequence, Union

import numpy as np
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmrefseg.registry import TRANSFORMS
from .loading import LoadRefImage

ImageInput = Union[str, np.ndarray]
#: The datasets' ``test_grouping`` values (see ``BaseReferDataset``).
GROUPINGS = ('expression', 'image', 'image_one_prompt')


def text_only_sample(image: ImageInput, phrases: Sequence[str]) -> dict:
    """The dataset-sample dict of an image and phrases, without annotations.

    Args:
        image (str | np.ndarray): an image path, or an H x W x 3 uint8 RGB
            array.
        phrases (Sequence[str]): the K >= 1 referring phrases.

    Returns:
        dict: ``expressions`` (one ``dict(text=...)`` per phrase) and
        ``img_path`` or ``img``; what a dataset yields, minus the ground
        truth, so the test pipeline takes it as it is.
    """
    if isinstance(phrases, str):
        phrases = [phrases]
    phrases = [str(p) for p in phrases]
    if not phrases or any(not p.strip() for p in phrases):
        raise ValueError(f'Need one or more non-empty phrases, got {phrases}')
    sample = dict(expressions=[dict(text=p) for p in phrases])
    if isinstance(image, str):
        sample['img_path'] = image
    elif isinstance(image, np.ndarray):
        sample['img'] = image
    else:
        raise TypeError('image must be a path or an H x W x 3 uint8 RGB '
                        f'array, got {type(image).__name__}')
    return sample


def _test_pipeline(pipeline) -> Compose:
    if isinstance(pipeline, Config):
        pipeline = pipeline.test_dataloader.dataset.pipeline
    transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                  for t in pipeline]
    return Compose(transforms)


def build_text_only_batch(pipeline, image: ImageInput,
                          phrases: Sequence[str],
                          grouping: str = 'expression') -> dict:
    """Run a model's test pipeline on an image and phrases, and collate.

    Args:
        pipeline (Config | list): a model config (its
            ``test_dataloader.dataset.pipeline`` is used) or the pipeline
            itself (transform configs or objects).
        image (str | np.ndarray): an image path or an H x W x 3 uint8 RGB
            array.
        phrases (Sequence[str]): the phrases.
        grouping (str): 'expression' (default): one sample per phrase, the
            evaluation unit of every method; 'image': one sample with all
            phrases, each answered in its own conversation (the same
            predictions as 'expression', the image encoded once);
            'image_one_prompt': one sample with all phrases in one
            conversation (MLLMSeg's multi-expression prompt; Text4Seg
            answers one phrase per conversation and refuses it).

    Returns:
        dict: ``inputs`` and ``data_samples`` (``RefSegDataSample``, no
        ground truth) as a dataloader yields them: pass it to
        ``model.test_step`` (or ``model.data_preprocessor`` then
        ``model.predict``). Predictions come back in phrase order, one
        sample per phrase with 'expression', one with K otherwise.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f'grouping must be one of {GROUPINGS}, got '
                         f'{grouping!r}')
    if isinstance(image, str):
        # Read once, however many samples share it.
        path = image
        image = LoadRefImage(check_size=False)(dict(img_path=path))['img']
    else:
        path = None
    groups: List[Sequence[str]] = [[p] for p in phrases] \
        if grouping == 'expression' else [phrases]
    transform = _test_pipeline(pipeline)
    packed = []
    for group in groups:
        sample = text_only_sample(image, group)
        sample['test_grouping'] = grouping
        if path is not None:
            sample['img_path'] = path
        packed.append(transform(sample))
    return pseudo_collate(packed)
