# Copyright (c) mmrefseg contributors.
"""Loading of images and per-expression masks of referring samples."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmrefseg.registry import TRANSFORMS
from ..refer_io import union_mask


def _sample_ids(results: dict) -> str:
    """'img_id=.., ref_ids=[..]' of a sample, for error messages."""
    ref_ids = [e.get('ref_id') for e in results.get('expressions', [])]
    return f'img_id={results.get("img_id")}, ref_ids={ref_ids}'


@TRANSFORMS.register_module()
class LoadRefImage(BaseTransform):
    """Read ``img_path`` as an RGB uint8 image (or take a given ``img``).

    A sample that already carries ``img`` (a user's H x W x 3 uint8 RGB
    array, see :func:`text_only_sample`) is checked and kept; nothing is
    read.

    EXIF orientation is ignored by default because COCO/REFER annotations are
    drawn on the stored pixel grid, and the decoded size is checked against
    the ``height``/``width`` of instances.json so that masks cannot silently
    land on a rotated or resized image.

    Required keys: ``img_path`` or ``img`` (and ``height``/``width`` if
    present).
    Added keys: ``img`` (H, W, 3) uint8 RGB, ``img_shape``, ``ori_shape``.

    Args:
        color_type (str): mmcv decode flag. Defaults to
            'color_ignore_orientation'.
        imdecode_backend (str): mmcv decode backend. Defaults to 'cv2'.
        check_size (bool): Raise if the image size differs from the
            sample's ``height``/``width``. Defaults to True.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 color_type: str = 'color_ignore_orientation',
                 imdecode_backend: str = 'cv2',
                 check_size: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.check_size = check_size
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        """Load the image.

        Args:
            results (dict): A dataset sample (docs/design.md, "Dataset
                sample").

        Returns:
            dict: ``results`` with ``img``, ``img_shape``, ``ori_shape``.
        """
        if results.get('img') is not None:
            return self._given_image(results)
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'Image not found: {path} ({_sample_ids(results)})') from e
        try:
            # mmcv's cv2 path honours channel_order='rgb' only for flag
            # 'color', so decode BGR with every backend and swap here.
            img = mmcv.imfrombytes(
                content,
                flag=self.color_type,
                channel_order='bgr',
                backend=self.imdecode_backend)
        except Exception as e:  # backends fail in different ways
            raise ValueError(f'Cannot decode image {path} '
                             f'({_sample_ids(results)}): {e}') from e
        if img is None or img.ndim != 3 or img.size == 0:
            raise ValueError(f'Cannot decode image {path} '
                             f'({_sample_ids(results)}): corrupt or not an '
                             'image')
        img = np.ascontiguousarray(img[..., ::-1])
        h, w = img.shape[:2]
        if self.check_size and 'height' in results and (
            (h, w) != (results['height'], results['width'])):
            raise ValueError(
                f'Image {path} is {h}x{w} (HxW) but its annotation says '
                f'{results["height"]}x{results["width"]} '
                f'({_sample_ids(results)})')
        results['img'] = img
        results['img_shape'] = (h, w)
        results['ori_shape'] = (h, w)
        return results

    @staticmethod
    def _given_image(results: dict) -> dict:
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim != 3 or \
                img.shape[2] != 3 or img.dtype != np.uint8 or img.size == 0:
            desc = f'{type(img).__name__} ' + (
                f'{img.shape} {img.dtype}' if isinstance(img, np.ndarray)
                else '')
            raise ValueError('A given image must be an H x W x 3 uint8 RGB '
                             f'array, got {desc} ({_sample_ids(results)})')
        h, w = img.shape[:2]
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = (h, w)
        results['ori_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r}, '
                f'check_size={self.check_size}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadRefMasks(BaseTransform):
    """Decode every expression's target into a mask at the original size.

    Multi-target expressions get the union of their annotations' masks,
    no-target expressions an all-zero mask. A sample without annotations (a
    user's phrases: expressions with a ``text`` only) gets its texts and no
    ground truth, so the same test pipeline serves both.

    Required keys: ``expressions``, ``height``, ``width`` (or
    ``ori_shape``).
    Added keys: ``texts`` list[str] (K), ``ref_ids`` and ``sent_ids``
    (list, None where unknown); with annotations also ``gt_masks`` (K, H, W)
    uint8 {0, 1}, ``gt_bboxes`` (K, 4) float32 xyxy, ``no_target`` (K,)
    bool.
    """

    def transform(self, results: dict) -> dict:
        """Decode the masks.

        Args:
            results (dict): A dataset sample (docs/design.md, "Dataset
                sample").

        Returns:
            dict: ``results`` with the keys listed above.
        """
        exprs = results['expressions']
        results['texts'] = [e['text'] for e in exprs]
        results['ref_ids'] = [e.get('ref_id') for e in exprs]
        results['sent_ids'] = [e.get('sent_id') for e in exprs]
        annotated = ['segmentations' in e for e in exprs]
        if not any(annotated):
            return results
        if not all(annotated):
            raise ValueError(
                f'{sum(annotated)} of {len(exprs)} expressions of '
                f'{results.get("img_path")} have segmentations; either all '
                'or none must have them.')
        if 'height' in results:
            h, w = int(results['height']), int(results['width'])
        else:
            h, w = results['ori_shape'][:2]
        masks = np.zeros((len(exprs), h, w), dtype=np.uint8)
        for k, expr in enumerate(exprs):
            try:
                masks[k] = union_mask(expr['segmentations'], h, w)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f'Bad segmentation for ref_id={expr.get("ref_id")} '
                    f'ann_ids={expr.get("ann_ids")} of '
                    f'{results.get("img_path")}: {e}') from e
        results['gt_masks'] = masks
        results['gt_bboxes'] = np.asarray([e['bbox'] for e in exprs],
                                          dtype=np.float32).reshape(-1, 4)
        results['no_target'] = np.asarray(
            [bool(e['no_target']) for e in exprs], dtype=bool)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
