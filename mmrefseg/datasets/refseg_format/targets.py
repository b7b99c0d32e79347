# Copyright (c) mmrefseg contributors.
"""Decoding the targets of refseg JSON Lines records (see ``records.py``)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..refer_io import segmentation_to_mask


class MaskSizeError(ValueError):
    """A mask (PNG or RLE) does not have the size of its image."""


def read_image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of an image from its header (pixels not decoded).

    The stored pixel grid is reported (EXIF orientation ignored), which is
    what ``LoadRefImage`` decodes by default.

    Args:
        path (str): Image file.

    Returns:
        tuple[int, int]: ``(height, width)``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not an image PIL can read.
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL raises several types for bad files
        raise ValueError(f'Cannot read image {path}: {e}') from e
    return int(height), int(width)


def read_mask_png(path: str, value: Optional[int] = None) -> np.ndarray:
    """Binary mask of a PNG.

    Single-channel PNGs (``L``, ``I;16``, palette ``P``, where the palette
    index is the value) give ``pixel != 0`` or, with ``value``,
    ``pixel == value``. Colour PNGs give "any colour channel non-zero" (the
    alpha channel is ignored) and do not accept ``value``.

    Args:
        path (str): The PNG.
        value (int, optional): Label of the target in a label map.

    Returns:
        np.ndarray: (H, W) uint8 in {0, 1}.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Unreadable, or ``value`` given for a colour PNG.
    """
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL raises several types for bad files
        raise ValueError(f'Cannot read mask {path}: {e}') from e
    if arr.ndim == 3:
        if value is not None:
            raise ValueError(f'Mask {path} has {arr.shape[2]} channels; '
                             '"value" needs a single-channel label map')
        return (arr[..., :3] != 0).any(-1).astype(np.uint8)
    if arr.ndim != 2:
        raise ValueError(f'Mask {path} has shape {arr.shape}')
    hit = arr != 0 if value is None else arr == value
    return hit.astype(np.uint8)


def box_polygon(box: Sequence[float]) -> List[List[float]]:
    """The rectangle of an ``[x1, y1, x2, y2]`` box as COCO polygons."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a (H, W) mask, ``counts`` as str (JSON-able)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(s) for s in rle['size']],
                counts=rle['counts'].decode('ascii'))


def mask_box_xyxy(mask: np.ndarray) -> Optional[List[float]]:
    """Tight box of a mask in pixel-edge coordinates, None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1),
            float(ys.max() + 1)]


def target_box_xyxy(target: dict, height: int,
                    width: int) -> Optional[List[float]]:
    """Box of a parsed target without reading any file.

    The target's own ``box`` wins; polygons give their coordinate extent
    (as COCO's ``bbox`` of a polygon annotation), RLE its pixel-edge box.
    PNG targets without a ``box`` return None (known once decoded).

    Args:
        target (dict): A target of :func:`parse_record`.
        height (int): Image height.
        width (int): Image width.

    Returns:
        list[float] | None: ``[x1, y1, x2, y2]``.
    """
    if target['box'] is not None:
        return list(target['box'])
    if target['kind'] == 'polygons':
        xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2)
                             for p in target['data']])
        return [float(xy[:, 0].min()), float(xy[:, 1].min()),
                float(xy[:, 0].max()), float(xy[:, 1].max())]
    if target['kind'] == 'rle':
        mask = segmentation_to_mask(target['data'], height, width)
        box = mask_box_xyxy(mask)
        return box if box is not None else [0.0, 0.0, 0.0, 0.0]
    return None


def union_box_xyxy(boxes: Sequence[Sequence[float]]) -> List[float]:
    """Enclosing box of xyxy boxes, ``[0, 0, 0, 0]`` when there is none."""
    if not boxes:
        return [0.0, 0.0, 0.0, 0.0]
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return [float(b[:, 0].min()), float(b[:, 1].min()),
            float(b[:, 2].max()), float(b[:, 3].max())]


def target_mask(target: dict, height: int, width: int,
                mask_path: Optional[str] = None) -> np.ndarray:
    """Decode a mask target (polygons, RLE or PNG) at the image size.

    Args:
        target (dict): A target of :func:`parse_record` whose kind is not
            'box'.
        height (int): Image height.
        width (int): Image width.
        mask_path (str, optional): Resolved PNG path (kind 'mask').

    Returns:
        np.ndarray: (height, width) uint8 in {0, 1}.

    Raises:
        MaskSizeError: The mask's size is not the image's.
        ValueError: The mask cannot be read.
    """
    kind = target['kind']
    if kind == 'mask':
        mask = read_mask_png(mask_path or target['data'], target['value'])
        if mask.shape != (height, width):
            raise MaskSizeError(f'mask {mask_path or target["data"]} is '
                             f'{mask.shape[0]}x{mask.shape[1]} (HxW) but the '
                             f'image is {height}x{width}')
        return mask
    if kind == 'rle':
        size = [int(v) for v in target['data']['size']]
        if size != [height, width]:
            raise MaskSizeError(f'RLE size {size} (HxW) is not the image '
                                f'size {[height, width]}')
    if kind in ('polygons', 'rle'):
        return segmentation_to_mask(target['data'], height, width)
    raise ValueError(f'a {kind!r} target has no mask')
