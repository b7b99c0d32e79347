# Copyright (c) mmrefseg contributors.
"""Decoding Text4Seg's full-length descriptors (no RLE) back to a grid.

The paper's baseline answer writes all ``h * w`` labels in raster order on
one line joined by ``'| '`` (:func:`.rrle.encode_full_descriptors`); the
reference reads it by splitting on that separator and padding or cutting
the list to ``h * w`` cells. This decoder does the same and, like the
R-RLE one, never raises and reports what it repaired with the repair kinds
of :data:`.rrle_decode.REPAIR_KINDS`.
"""
from typing import List, Optional, Set

import numpy as np

from .rrle import (
    BACKGROUND,
    COUNT_SEP,
    DEFAULT_GRID_HW,
    RUN_SEP,
    SEG_END,
    SEG_START,
    check_grid_hw,
)
from .rrle_decode import (
    REPAIR_KINDS,
    STATUS_OK,
    DecodeResult,
    _as_text,
    _foreground,
)

ANSWER_FORMATS = ('rrle', 'full')


def _cells(body: str, repairs: Set[str]) -> List[str]:
    """Split a full-descriptor body into labels, noting format slips."""
    if '\n' in body.strip('\n') or '\r' in body:
        repairs.add('row_separator')
    flat = ' '.join(body.split('\n')).replace('\r', ' ')
    cells = [cell.strip() for cell in flat.split(RUN_SEP.strip())]
    if flat.strip() and flat.strip() != RUN_SEP.join(
            c for c in cells if c):
        repairs.add('run_format')
    cells = [c for c in cells if c]
    if any(COUNT_SEP.strip() in c for c in cells):
        # R-RLE runs in a full-descriptor answer: read as plain labels.
        repairs.add('run_format')
    return cells


def decode_full_answer(text: str,
                       grid_hw=DEFAULT_GRID_HW,
                       label: Optional[str] = None,
                       background: str = BACKGROUND) -> DecodeResult:
    """Decode a full-descriptor answer into a foreground grid.

    Args:
        text (str): Generated text, e.g. ``"Sure, ...:\\n<seg>others| ...
            </seg>"``.
        grid_hw (Sequence[int]): Grid size ``(h, w)``.
        label (str | None): If given, only this expression is foreground
            (others are ``'unknown_label'``); by default any non-background
            label is.
        background (str): Background label.

    Returns:
        DecodeResult: Grid, labels (``(h, w)`` object array), repairs.
    """
    h, w = check_grid_hw(grid_hw)
    text = _as_text(text)
    repairs: Set[str] = set()
    start = text.find(SEG_START)
    body = text[start + len(SEG_START):] if start >= 0 else text
    if start < 0:
        repairs.add('no_seg_tag')
        # The sentence before the grid is not a label.
        body = body.split('\n', 1)[1] if '\n' in body else body
    end = body.find(SEG_END)
    if end >= 0:
        body = body[:end]
    cells = _cells(body, repairs)
    need = h * w
    if end < 0 and start >= 0:
        repairs.add('truncated' if len(cells) < need else 'missing_end_tag')
    if not cells:
        if start >= 0:
            repairs.add('empty_body')
        cells = [background]
    if len(cells) != need:
        repairs.add('row_length')
        cells = (cells + [cells[-1]] * need)[:need]
    rows = [cells[i * w:(i + 1) * w] for i in range(h)]
    grid = _foreground(rows, label, background, repairs)
    labels = np.empty((h, w), dtype=object)
    for i, row in enumerate(rows):
        labels[i, :] = row
    ordered = [kind for kind in REPAIR_KINDS if kind in repairs]
    return DecodeResult(grid=grid, labels=labels,
                        status=ordered[0] if ordered else STATUS_OK,
                        repairs=ordered, no_target=not grid.any())
