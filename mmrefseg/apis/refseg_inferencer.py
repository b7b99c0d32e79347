# Copyright (c) mmrefseg contributors.
"""RefSegInferencer: masks for a user's images and phrases.

.. code-block:: python

    from mmrefseg.apis import RefSegInferencer

    inferencer = RefSegInferencer('configs/self1e/self1e_tiny_synth.py',
                                  weights='work_dirs/.../iter_1700.pth')
    result = inferencer('street.jpg', ['the man in red', 'the white car'],
                        return_vis=True, out_dir='outputs')
    result['predictions'][0]['masks']      # bool [2, H, W]
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.infer import BaseInferencer
from rich.progress import track

from mmrefseg.datasets.transforms.loading import LoadRefImage
from mmrefseg.datasets.transforms.text_only import build_text_only_batch
from mmrefseg.registry import INFERENCERS, TRANSFORMS
from mmrefseg.visualization import RefSegLocalVisualizer
from .prediction_io import summarize_masks, write_prediction

ImageInput = Union[str, np.ndarray]
PhrasesInput = Union[str, Sequence[str], Sequence[Sequence[str]]]


def _per_image_phrases(num_images: int,
                       phrases: PhrasesInput) -> List[List[str]]:
    """Phrases of each image: one list for all, or one list per image."""
    if isinstance(phrases, str):
        return [[phrases]] * num_images
    phrases = list(phrases)
    if phrases and all(isinstance(p, str) for p in phrases):
        return [list(phrases)] * num_images
    if len(phrases) != num_images or not all(
            isinstance(p, (list, tuple)) for p in phrases):
        raise ValueError(
            'phrases must be a string, a list of strings (the same phrases '
            'for every image) or one list of strings per image; got '
            f'{len(phrases)} entries for {num_images} images')
    return [[str(x) for x in p] for p in phrases]


@INFERENCERS.register_module()
class RefSegInferencer(BaseInferencer):
    """Referring segmentation of images and phrases (MMEngine inferencer).

    Every phrase of an image goes through one ``test_step`` call, one
    conversation per phrase (each phrase is answered on its own, as in
    evaluation), and the results come back per image at its original size.

    Args:
        model (str | Config | dict): A config file, a config, or the folder
            written by ``tools/model_converters/refsegmentor_to_hf.py``.
        weights (str, optional): Checkpoint to load. Without one the
            weights are random (a warning says so).
        device (str, optional): 'cpu', 'cuda', 'cuda:1'; default: CUDA when
            available.
        cfg_options (dict, optional): Overrides merged into the config,
            e.g. ``{'model.test_cfg.threshold': 0.4}``.
        show_progress (bool): A progress bar over images when there are
            more than one.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time'}
    postprocess_kwargs: set = {'out_dir', 'return_datasamples'}

    def __init__(self,
                 model: Union[str, Config, dict],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 show_progress: bool = True) -> None:
        from mmrefseg.utils import register_all_modules
        register_all_modules(init_default_scope=True)
        if isinstance(model, str) and not osp.exists(model):
            raise FileNotFoundError(
                f'No config file or exported model folder at {model!r}')
        self._exported = None
        if isinstance(model, str) and osp.isdir(model):
            # A folder written by refsegmentor_to_hf.py: weights inside.
            from mmrefseg.converters import load_exported_model
            if weights is not None:
                raise ValueError('An exported folder holds its weights; '
                                 'do not pass weights as well.')
            self._exported = load_exported_model(model, 'cpu', cfg_options)
            model, cfg_options = self._exported.cfg, None
        if isinstance(model, str) and osp.isfile(model):
            model = Config.fromfile(model)
        if cfg_options:
            model = Config(model) if isinstance(model, dict) else model
            model.merge_from_dict(cfg_options)
        super().__init__(model=model, weights=weights, device=device,
                         scope='mmrefseg', show_progress=show_progress)

    def _init_model(self, cfg: ConfigDict, weights: Optional[str],
                     device: str = 'cpu') -> torch.nn.Module:
        if self._exported is not None:
            return self._exported.to(device).eval()
        return super()._init_model(cfg, weights, device)

    # ------------------------------------------------------------- building
    def _init_pipeline(self, cfg: ConfigDict) -> List[Any]:
        """The test pipeline's transforms, built once."""
        try:
            pipeline = cfg.test_dataloader.dataset.pipeline
        except AttributeError as err:
            raise KeyError('The config has no test_dataloader.dataset.'
                           'pipeline to prepare images with.') from err
        return [TRANSFORMS.build(t) for t in pipeline]

    def _init_collate(self, cfg: ConfigDict):
        return None  # build_text_only_batch collates

    def _init_visualizer(self, cfg: ConfigDict) -> RefSegLocalVisualizer:
        name = f'refseg_inferencer_{id(self)}'
        return RefSegLocalVisualizer(name=name)

    def _load_weights_to_model(self, model: torch.nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Optional[ConfigDict]) -> None:
        """Load strictly: a checkpoint of another config is an error that
        names the mismatched keys (as ``tools/test.py`` does)."""
        if checkpoint is None:
            super()._load_weights_to_model(model, checkpoint, cfg)
            return
        from mmrefseg.engine.hooks import (
            CheckpointMismatchError,
            compare_state_dict,
        )
        state = checkpoint.get('state_dict', checkpoint)
        meta = checkpoint.get('meta')
        covers = meta.get('state_dict_covers') if isinstance(meta,
                                                             dict) else None
        report = compare_state_dict(model, state, covers)
        if report:
            raise CheckpointMismatchError(
                f'The checkpoint does not match the config: '
                f'{report.counts()}.\n' + '\n'.join(report.lines(5)))
        super()._load_weights_to_model(model, checkpoint, cfg)

    # ------------------------------------------------------------- running
    def __call__(self,
                 images: Union[ImageInput, Sequence[ImageInput]],
                 phrases: PhrasesInput,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: float = 0,
                 out_dir: str = '',
                 return_datasamples: bool = False) -> Dict[str, list]:
        """Segment what each phrase refers to in each image.

        Args:
            images (str | np.ndarray | list): Image path(s) or H x W x 3
                uint8 RGB array(s).
            phrases (str | list[str] | list[list[str]]): One phrase, the
                same phrases for every image, or one list per image.
            return_vis (bool): Also return the pictures (RGB arrays).
            show (bool): Show each picture in a window.
            wait_time (float): Seconds a shown picture stays.
            out_dir (str): If set, write ``vis/``, ``masks/`` and ``preds/``
                there (see :func:`write_prediction`).
            return_datasamples (bool): Return the ``RefSegDataSample``s of
                every phrase instead of the per-image dicts.

        Returns:
            dict: ``predictions`` (one dict per image: ``phrases``,
            ``masks`` bool [K, H, W], ``scores``, ``no_target``, ``boxes``,
            ``areas``, ``parse_status``) and ``visualization`` (pictures,
            or an empty list).
        """
        single = isinstance(images, (str, np.ndarray))
        images = [images] if single else list(images)
        per_image = _per_image_phrases(len(images), phrases)
        loaded = [self._load_image(img) for img in images]
        samples = []
        progress = self.show_progress and len(images) > 1
        items = list(zip(images, loaded, per_image))
        for source, image, texts in (track(items, description='Inference')
                                     if progress else items):
            path = source if isinstance(source, str) else None
            samples.append(self._predict_one(image, texts, path))
        pictures = self.visualize(list(zip(loaded, per_image)), samples,
                                  return_vis=return_vis or show or
                                  bool(out_dir), show=show,
                                  wait_time=wait_time)
        return self.postprocess(samples, pictures, return_datasamples,
                                out_dir=out_dir, images=images,
                                return_vis=return_vis)

    @staticmethod
    def _load_image(image: ImageInput) -> np.ndarray:
        """An H x W x 3 uint8 RGB array from a path or an array (grey and
        RGBA arrays are converted; anything else gets a clear error)."""
        if isinstance(image, str):
            return LoadRefImage(check_size=False)(dict(img_path=image))['img']
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        return LoadRefImage()(dict(img=image))['img']

    @torch.no_grad()
    def _predict_one(self, image: np.ndarray, texts: List[str],
                     path: Optional[str]) -> List[Any]:
        """All phrases of one image in one ``test_step``: one sample
        grouped by image, each phrase answered in its own conversation with
        the image encoded once (the same masks as one call per phrase)."""
        batch = build_text_only_batch(self.pipeline, image, texts,
                                      grouping='image')
        if path is not None:
            for sample in batch['data_samples']:
                sample.set_metainfo(dict(img_path=path))
        return self.model.test_step(batch)

    @staticmethod
    def _arrays(samples: List[Any]) -> Dict[str, Any]:
        """Stack one image's samples into [K, ...] arrays."""
        masks = np.concatenate(
            [s.pred_masks.cpu().numpy().astype(bool) for s in samples])
        probs = np.concatenate(
            [s.pred_probs.float().cpu().numpy() for s in samples])
        no_target = np.concatenate(
            [s.pred_no_target.cpu().numpy().astype(bool) for s in samples])
        status = [st for s in samples
                  for st in (s.parse_status if 'parse_status' in s else
                             [None] * len(s.texts))]
        return dict(masks=masks, probs=probs, no_target=no_target,
                    parse_status=status,
                    answers_only='generated_texts' in samples[0])

    def visualize(self, inputs: list, preds: List[List[Any]],
                  return_vis: bool = False, show: bool = False,
                  wait_time: float = 0, **kwargs) -> List[np.ndarray]:
        """One picture per image: masks in legend colours with phrases."""
        if not return_vis:
            return []
        pictures = []
        for (image, texts), samples in zip(inputs, preds):
            arrays = self._arrays(samples)
            notes = []
            for k in range(len(texts)):
                if arrays['no_target'][k]:
                    notes.append('no target')
                elif arrays['answers_only']:
                    notes.append(arrays['parse_status'][k] or '')
                elif arrays['masks'][k].any():
                    score = arrays['probs'][k][arrays['masks'][k]].mean()
                    notes.append(f'p={score:.2f}')
                else:
                    notes.append('empty mask')
            picture = self.visualizer.draw_expressions(
                image, texts, arrays['masks'], notes)
            if show:
                self.visualizer.show(picture, wait_time=wait_time)
            pictures.append(picture)
        return pictures

    def postprocess(self, preds: List[List[Any]], visualization: list,
                    return_datasamples: bool = False, out_dir: str = '',
                    images: Optional[list] = None,
                    return_vis: bool = False) -> Dict[str, list]:
        """Per-image dicts (or the data samples), files under ``out_dir``."""
        predictions = []
        for i, samples in enumerate(preds):
            arrays = self._arrays(samples)
            texts = [t for s in samples for t in s.texts]
            probs = None if arrays['answers_only'] else arrays['probs']
            pred = summarize_masks(texts, arrays['masks'], probs,
                                   arrays['no_target'].tolist(),
                                   arrays['parse_status'])
            if out_dir:
                source = images[i] if images else None
                stem = osp.splitext(osp.basename(source))[0] \
                    if isinstance(source, str) else f'image_{i}'
                write_prediction(out_dir, stem, pred,
                                 visualization[i] if visualization else None)
            predictions.append(pred)
        result = dict(predictions=[s for ss in preds for s in ss]
                      if return_datasamples else predictions,
                      visualization=visualization if return_vis else [])
        return result
