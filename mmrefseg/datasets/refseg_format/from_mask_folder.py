# Copyright (c) mmrefseg contributors.
"""A folder of (image, mask PNG, phrases) triplets -> refseg JSON Lines.

Layout (one object per mask; the part of a mask's stem before ``__`` names
its image)::

    <root>/images/0001.jpg
    <root>/masks/0001.png             <root>/phrases/0001.txt
    <root>/images/0002.jpg
    <root>/masks/0002__cat.png        <root>/phrases/0002__cat.txt
    <root>/masks/0002__dog.png        <root>/phrases/0002__dog.txt
                                      <root>/phrases/0002__zebra.txt

A ``.txt`` holds one phrase per non-empty line, all naming the object of the
mask with the same stem; a ``.txt`` with no mask holds *no-target* phrases
(nothing in the image matches them). Non-zero mask pixels are the object.
"""
import glob
import os.path as osp
from typing import Callable, Dict, Iterator, List, Optional

from .records import resolve_path
from .targets import mask_to_rle, read_image_size, read_mask_png

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
STEM_SEP = '__'


def _by_stem(folder: str, exts: tuple) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for path in sorted(glob.glob(osp.join(folder, '*'))):
        stem, ext = osp.splitext(osp.basename(path))
        if ext.lower() not in exts:
            continue
        if stem in found:
            raise ValueError(f'Two files with stem {stem!r} in {folder}: '
                             f'{osp.basename(found[stem])} and '
                             f'{osp.basename(path)}')
        found[stem] = path
    return found


def _read_phrases(path: str) -> List[str]:
    with open(path, 'r', encoding='utf-8') as f:
        phrases = [line.strip() for line in f if line.strip()]
    if not phrases:
        raise ValueError(f'{path} holds no phrase (one per line expected)')
    return phrases


def mask_folder_to_records(root: str,
                           images_dir: str = 'images',
                           masks_dir: str = 'masks',
                           phrases_dir: str = 'phrases',
                           split: Optional[str] = None,
                           embed_rle: bool = False,
                           progress: Optional[Callable[[], None]] = None
                           ) -> Iterator[dict]:
    """Records of the refseg format from the triplet folder described above.

    Records are sorted by phrase-file stem; each has ``id`` = that stem,
    ``image`` / ``mask`` relative to ``root`` (so the dataset's
    ``data_root`` is ``root``), the image size read from its header, and
    ``targets = [{"mask": ...}]`` (or ``[{"rle": ...}]`` with
    ``embed_rle``, making the file self-contained), or ``[]`` when the
    phrase file has no mask.

    Args:
        root (str): The folder.
        images_dir (str): Sub-folder of the images.
        masks_dir (str): Sub-folder of the mask PNGs.
        phrases_dir (str): Sub-folder of the ``.txt`` phrase files.
        split (str, optional): ``split`` written in every record.
        embed_rle (bool): Write the masks as COCO RLE instead of paths.
        progress (Callable, optional): Called once per record.

    Yields:
        dict: Records in the file format.

    Raises:
        ValueError: A mask has no phrase file, a stem names no image, or a
            file is unreadable; the message names the file.
    """
    images = _by_stem(resolve_path(root, images_dir), IMAGE_EXTS)
    masks = _by_stem(resolve_path(root, masks_dir), ('.png', ))
    phrase_files = _by_stem(resolve_path(root, phrases_dir), ('.txt', ))
    orphans = sorted(set(masks) - set(phrase_files))
    if orphans:
        raise ValueError(
            f'{len(orphans)} mask(s) have no phrase file in '
            f'{resolve_path(root, phrases_dir)}, e.g. {orphans[:3]}: write '
            '<stem>.txt with one phrase per line next to each <stem>.png')
    if not phrase_files:
        raise ValueError(f'No .txt phrase files in '
                         f'{resolve_path(root, phrases_dir)}')
    sizes: Dict[str, tuple] = {}
    for stem, txt in sorted(phrase_files.items()):
        image_stem = stem.split(STEM_SEP)[0]
        image = images.get(image_stem)
        if image is None:
            raise ValueError(
                f'{txt}: no image {image_stem}.<{"|".join(IMAGE_EXTS)}> in '
                f'{resolve_path(root, images_dir)}')
        if image not in sizes:
            sizes[image] = read_image_size(image)
        height, width = sizes[image]
        targets = []
        if stem in masks:
            mask_file = masks[stem]
            if embed_rle:
                targets.append(dict(rle=mask_to_rle(read_mask_png(mask_file))))
            else:
                targets.append(dict(mask=osp.relpath(mask_file, root)))
        record = dict(
            id=stem,
            image=osp.relpath(image, root),
            height=height,
            width=width,
            phrases=_read_phrases(txt),
            targets=targets)
        if split is not None:
            record['split'] = split
        if progress is not None:
            progress()
        yield record
