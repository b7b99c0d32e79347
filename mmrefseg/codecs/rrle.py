# Copyright (c) mmrefseg contributors.
"""Text4Seg semantic descriptors and their row-wise RLE (R-RLE) text form.

A binary mask becomes an ``h x w`` grid of text labels (the referring
expression on foreground cells, ``others`` elsewhere) which is written row by
row, merging equal neighbours into runs::

    others *4
     others *1| white horse *2| others *1
     white horse *3| others *1
     others *4

The encoder reproduces the reference implementation byte for byte; the
forgiving decoder lives in :mod:`mmrefseg.codecs.rrle_decode`.

Only numpy and the standard library are used, so the codec can run in data
pipelines and evaluation scripts without torch.
"""
import itertools
import re
from typing import Any, List, Sequence, Tuple

import numpy as np

BACKGROUND = 'others'
DEFAULT_GRID_HW = (16, 16)
SEG_START = '<seg>'
SEG_END = '</seg>'
ROW_SEP = '\n '
RUN_SEP = '| '
COUNT_SEP = ' *'
CLASS_PLACEHOLDER = '[class_name]'
DEFAULT_ANSWER_TEMPLATE = \
    "Sure, here is the segmentation mask for '[class_name]':"
# Stand-in for expressions that would vanish or read as background once
# sanitised; any non-background text is foreground to the decoder.
FALLBACK_LABEL = 'target'


def label_key(label: str) -> str:
    """Comparison key of a label: collapsed whitespace, case-folded."""
    return ' '.join(label.split()).casefold()


def check_grid_hw(grid_hw: Sequence[int]) -> Tuple[int, int]:
    """Validate a grid size and return it as a tuple of two ints."""
    try:
        h, w = (int(v) for v in grid_hw)
    except (TypeError, ValueError) as e:
        raise ValueError(f'grid_hw must be two integers, got {grid_hw!r}') \
            from e
    if h < 1 or w < 1:
        raise ValueError(f'grid_hw must be positive, got {grid_hw!r}')
    return h, w


def _centre_indices(src_len: int, dst_len: int) -> np.ndarray:
    """Source index of each destination cell centre, as Pillow NEAREST does.

    Ideally ``floor((i + 0.5) * src / dst)``, but Pillow walks the centres by
    repeatedly adding ``src / dst`` in double precision, so a centre that
    falls exactly on a pixel border may land just before it (e.g. 2 -> 7
    cells). Repeating that float walk reproduces Pillow bit for bit, which is
    what the reference training data was made with.
    """
    step = src_len / dst_len
    centre = step * 0.5
    indices = np.empty(dst_len, dtype=np.int64)
    for i in range(dst_len):
        indices[i] = int(centre)
        centre += step
    return np.minimum(indices, src_len - 1)


def mask_to_grid(mask: np.ndarray,
                 grid_hw: Sequence[int] = DEFAULT_GRID_HW) -> np.ndarray:
    """Downsample a mask to the descriptor grid by cell-centre sampling.

    This is ``Image.fromarray(mask).resize((w, h), Image.NEAREST)`` of the
    reference data scripts: each cell takes the pixel at its centre, with no
    vote over the cell, so thin objects may vanish from the grid.

    Args:
        mask (np.ndarray): ``(H, W)`` mask; values > 0 are foreground.
        grid_hw (Sequence[int]): Grid size ``(h, w)``.

    Returns:
        np.ndarray: ``(h, w)`` bool grid.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f'mask must be a non-empty 2-D array, got shape '
                         f'{mask.shape}')
    h, w = check_grid_hw(grid_hw)
    rows = _centre_indices(mask.shape[0], h)
    cols = _centre_indices(mask.shape[1], w)
    return mask[np.ix_(rows, cols)] > 0


def sanitize_label(label: str, background: str = BACKGROUND) -> str:
    """Make an expression safe to use as a descriptor label.

    The grammar cannot escape ``|``, ``*`` or line breaks, and the decoder
    strips labels and compares them with the background case-insensitively,
    so these are replaced by spaces, whitespace is collapsed, and a label that
    would be empty or read as background becomes :data:`FALLBACK_LABEL`.
    Ordinary expressions come back unchanged.

    Args:
        label (str): Raw expression.
        background (str): Background label.

    Returns:
        str: A label that round-trips through encode and decode.
    """
    cleaned = ' '.join(re.sub(r'[|*]', ' ', str(label)).split())
    if not cleaned or label_key(cleaned) == label_key(background):
        return FALLBACK_LABEL
    return cleaned


def _check_label(label: Any) -> None:
    """Raise if a label cannot be written unambiguously."""
    if not isinstance(label, str):
        raise ValueError(f'labels must be str, got {type(label).__name__}')
    if (not label or label != label.strip()
            or any(c in label for c in '|*\n\r')):
        raise ValueError(
            f'label {label!r} cannot be encoded: it must be non-empty, '
            'without surrounding whitespace, "|", "*" or line breaks '
            '(see sanitize_label)')


def _label_rows(labels_2d: Sequence[Sequence[str]]) -> List[List[str]]:
    """Validate a rectangular, non-empty label grid and return it as lists."""
    rows = [list(row) for row in labels_2d]
    if not rows or not rows[0]:
        raise ValueError('labels_2d must be a non-empty 2-D grid')
    if any(len(row) != len(rows[0]) for row in rows):
        raise ValueError('all rows of labels_2d must have the same length')
    for label in set(itertools.chain.from_iterable(rows)):
        _check_label(label)
    return rows


def grid_to_labels(grid: np.ndarray,
                   label: str,
                   background: str = BACKGROUND) -> List[List[str]]:
    """Turn a binary grid into semantic descriptors.

    Args:
        grid (np.ndarray): ``(h, w)`` grid; truthy cells are foreground.
        label (str): Foreground label, usually the referring expression.
        background (str): Background label.

    Returns:
        list[list[str]]: ``h`` rows of ``w`` labels.
    """
    grid = np.asarray(grid, dtype=bool)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f'grid must be a non-empty 2-D array, got shape '
                         f'{grid.shape}')
    _check_label(label)
    _check_label(background)
    if label_key(label) == label_key(background):
        raise ValueError(f'foreground label {label!r} would decode as the '
                         f'background {background!r}')
    return [[label if cell else background for cell in row]
            for row in grid.tolist()]


def _runs(labels: Sequence[str]) -> List[str]:
    """Merge equal neighbours into ``LABEL *N`` runs."""
    return [f'{label}{COUNT_SEP}{sum(1 for _ in group)}'
            for label, group in itertools.groupby(labels)]


def encode_rrle(labels_2d: Sequence[Sequence[str]]) -> str:
    """Write semantic descriptors in row-wise RLE, as the reference does.

    Args:
        labels_2d (Sequence[Sequence[str]]): ``h`` rows of ``w`` labels.

    Returns:
        str: The body, e.g. ``'others *4\\n others *1| horse *3\\n'``: runs
        joined by ``'| '``, rows by ``'\\n '``, one trailing newline.
    """
    rows = _label_rows(labels_2d)
    return ROW_SEP.join(RUN_SEP.join(_runs(row)) for row in rows) + '\n'


def encode_irle(labels_2d: Sequence[Sequence[str]]) -> str:
    """Write descriptors as image-wise RLE (the paper's I-RLE ablation).

    Args:
        labels_2d (Sequence[Sequence[str]]): ``h`` rows of ``w`` labels.

    Returns:
        str: Runs over the raster-order sequence joined by ``'| '``, with no
        row breaks.
    """
    rows = _label_rows(labels_2d)
    return RUN_SEP.join(_runs(list(itertools.chain.from_iterable(rows))))


def encode_full_descriptors(labels_2d: Sequence[Sequence[str]]) -> str:
    """Write all ``h * w`` labels without RLE (the paper's baseline).

    Args:
        labels_2d (Sequence[Sequence[str]]): ``h`` rows of ``w`` labels.

    Returns:
        str: Every label in raster order on one line, joined by ``'| '``.
    """
    rows = _label_rows(labels_2d)
    return RUN_SEP.join(itertools.chain.from_iterable(rows))


def build_answer(expression: str,
                 grid: np.ndarray,
                 template: str = DEFAULT_ANSWER_TEMPLATE,
                 background: str = BACKGROUND,
                 sanitize: bool = True,
                 answer_format: str = 'rrle') -> str:
    """Build the full assistant response used as the training target.

    Args:
        expression (str): Referring expression; fills ``[class_name]`` in the
            template and labels the foreground cells.
        grid (np.ndarray): ``(h, w)`` binary grid, see :func:`mask_to_grid`.
        template (str): Answer sentence with a ``[class_name]`` placeholder.
        background (str): Background label.
        sanitize (bool): Pass the expression through :func:`sanitize_label`
            first so that unusual expressions cannot break the grammar.
        answer_format (str): ``'rrle'`` (the method) or ``'full'`` (all
            ``h * w`` labels, the paper's baseline).

    Returns:
        str: ``template + '\\n<seg>' + body + '</seg>'``.
    """
    encoders = dict(rrle=encode_rrle, full=encode_full_descriptors)
    if answer_format not in encoders:
        raise ValueError(f'answer_format must be one of {sorted(encoders)}, '
                         f'got {answer_format!r}')
    label = sanitize_label(expression, background) if sanitize else expression
    body = encoders[answer_format](grid_to_labels(grid, label, background))
    return (f'{template.replace(CLASS_PLACEHOLDER, label)}\n'
            f'{SEG_START}{body}{SEG_END}')


def encode_mask(mask: np.ndarray,
                label: str,
                grid_hw: Sequence[int] = DEFAULT_GRID_HW,
                background: str = BACKGROUND,
                sanitize: bool = True) -> str:
    """Mask to R-RLE body in one call (the reference ``encode_mask``).

    Args:
        mask (np.ndarray): ``(H, W)`` mask; values > 0 are foreground.
        label (str): Foreground label.
        grid_hw (Sequence[int]): Grid size ``(h, w)``.
        background (str): Background label.
        sanitize (bool): Pass the label through :func:`sanitize_label`.

    Returns:
        str: The R-RLE body (no answer sentence, no tags).
    """
    if sanitize:
        label = sanitize_label(label, background)
    return encode_rrle(
        grid_to_labels(mask_to_grid(mask, grid_hw), label, background))
