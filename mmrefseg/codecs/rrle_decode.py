# Copyright (c) mmrefseg contributors.
"""Robust decoding of Text4Seg R-RLE answers back to a mask grid.

The decoder is deliberately more forgiving than the reference one: it repairs
each row and the row count separately, survives truncated generations and
reports every repair it made (a status per sample that the metric counts)
instead of silently returning an empty mask. It never raises on the text of
an answer. The text format itself is described in :mod:`.rrle`.
"""
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Set, Tuple

import numpy as np

from .rrle import (
    BACKGROUND,
    COUNT_SEP,
    DEFAULT_GRID_HW,
    RUN_SEP,
    SEG_END,
    SEG_START,
    check_grid_hw,
    label_key,
    sanitize_label,
)

# Every repair the decoder can report, most severe first; a result's
# ``status`` is the most severe one it needed.
REPAIR_KINDS = (
    'no_seg_tag',       # no <seg>: the body was looked for in the whole text
    'truncated',        # no </seg> and the last row is cut or rows are missing
    'missing_end_tag',  # no </seg> although all rows are complete
    'empty_body',       # <seg> found but no row could be read: all background
    'row_count',        # rows != h: padded with background rows or cut
    'merged_rows',      # a line of k*w cells (lost row breaks) split in k rows
    'row_length',       # a row != w cells: padded with its last label or cut
    'bad_run',          # unreadable text (garbage line, empty run) dropped
    'missing_count',    # a label without ' *N' taken as a single cell
    'bad_count',        # count <= 0 (dropped), > h*w (one row), '3.5' (3)
    'unknown_label',    # empty label, or not the requested expression
    'row_separator',    # rows not separated by exactly '\n '
    'run_format',       # runs not written exactly as 'LABEL *N' joined by '| '
)
STATUS_OK = 'ok'

_COUNT_RE = re.compile(r'[ \t]*([+-]?)([0-9]*)')
_DIGITS_RE = re.compile(r'[0-9]+')
# Python refuses int() on very long digit strings; anything longer than this
# exceeds every sensible grid anyway.
_MAX_COUNT_DIGITS = 9

Row = List[Tuple[str, int]]


@dataclass
class DecodeResult:
    """What the decoder made of a generated answer.

    Attributes:
        grid (np.ndarray): ``(h, w)`` bool foreground grid.
        labels (np.ndarray): ``(h, w)`` object array with the label read (or
            padded in) for every cell.
        status (str): ``'ok'`` or the most severe entry of ``repairs``.
        repairs (list[str]): Repairs made, a subset of :data:`REPAIR_KINDS`
            in that order.
        no_target (bool): True when no cell is foreground.
    """
    grid: np.ndarray
    labels: Optional[np.ndarray] = None
    status: str = STATUS_OK
    repairs: List[str] = field(default_factory=list)
    no_target: bool = True


class _BodyParser:
    """Reads an R-RLE body line by line, recording repairs as it goes.

    Args:
        h (int): Number of rows expected.
        w (int): Cells per row expected.
        background (str): Background label.
        closed (bool): Whether the body is known to be complete; an open one
            (no ``</seg>``) may end inside a run.
        tagged (bool): Whether ``<seg>`` was seen; without it, lines are
            skipped until one holding a well-formed run.
    """

    def __init__(self, h: int, w: int, background: str, closed: bool,
                 tagged: bool) -> None:
        self.h, self.w = h, w
        self.closed, self.tagged = closed, tagged
        self.repairs: Set[str] = set()
        # Bumped on every report, so a line can tell whether it was clean
        # even when the same kind was already reported for an earlier line.
        self.reports = 0
        self.seen = {label_key(background)}

    def report(self, kind: str) -> None:
        """Record a repair."""
        self.repairs.add(kind)
        self.reports += 1

    def parse(self, body: str) -> List[Row]:
        """Split a body into rows of ``(label, cells)`` entries.

        Args:
            body (str): Text between ``<seg>`` and ``</seg>``.

        Returns:
            list[Row]: Rows in order; a zero-cell entry only names the label
            its row is padded with.
        """
        if '\r' in body:
            self.report('row_separator')
            body = body.replace('\r\n', '\n').replace('\r', '\n')
        lines = body.split('\n')
        cut_line = -1
        if not self.closed and lines[-1].strip():
            cut_line = len(lines) - 1
        rows: List[Row] = []
        blank_gap = False
        for index, line in enumerate(lines):
            if not line.strip():
                blank_gap = bool(rows)
                continue
            if not rows and not self.tagged and not _has_clean_run(line):
                continue  # the answer sentence before a tag-less body
            row = self._parse_line(line, cut=index == cut_line)
            if row is None:
                continue
            # Row 0 starts flush, every later row after exactly one space.
            misplaced = line[0].isspace() != bool(rows)
            if blank_gap or misplaced or (rows and line[1:2].isspace()):
                self.report('row_separator')
            blank_gap = False
            rows.append(row)
        if not self.closed:
            self.report('missing_end_tag')
            if cut_line >= 0 or len(rows) < self.h:
                self.report('truncated')
        return rows

    def _parse_line(self, line: str, cut: bool) -> Optional[Row]:
        """Parse one line of the body.

        Args:
            line (str): One non-blank line.
            cut (bool): The generation stopped inside this line, so its last
                piece may be incomplete.

        Returns:
            Row | None: The row's entries; None when the line holds no run.
        """
        pieces = line.split('|')
        if '*' not in line:
            if cut:  # bare text where the generation stopped: a row begun
                entry = self._fragment(pieces[-1])
                return [entry] if entry else None
            self.report('bad_run')
            return None
        reports = self.reports
        row: Row = []
        canonical: List[str] = []
        for index, piece in enumerate(pieces):
            is_tail = cut and index == len(pieces) - 1
            if is_tail and '*' not in piece:
                entry = self._fragment(piece)
                row.extend([entry] if entry else [])
            elif not piece.strip():
                self.report('bad_run')
            elif '*' not in piece:
                self.report('missing_count')
                label = piece.strip()
                self.seen.add(label_key(label))
                row.append((label, 1))
                canonical.append(label)
            else:
                self._parse_runs(piece, is_tail, row, canonical)
        if (reports == self.reports and not cut
                and RUN_SEP.join(canonical) != line.strip()):
            self.report('run_format')
        return row or None

    def _parse_runs(self, piece: str, is_tail: bool, row: Row,
                    canonical: List[str]) -> None:
        """Read every ``LABEL *N`` of a piece (several when a '|' is lost).

        Args:
            piece (str): Text between two ``|``, holding at least one '*'.
            is_tail (bool): Whether the generation stopped in this piece.
            row (Row): Entries of the current row, extended in place.
            canonical (list[str]): Canonical spelling of each run, extended
                in place, to notice formatting deviations.
        """
        parts = piece.split('*')
        label = parts[0]
        runs = 0
        for index, after in enumerate(parts[1:], start=1):
            match = _COUNT_RE.match(after)
            sign, digits = match.group(1), match.group(2)
            is_last = index == len(parts) - 1
            if not digits and not is_last:
                label = f'{label}*{after}'  # 'a*b *3': a star inside a label
                continue
            label = label.strip()
            self.seen.add(label_key(label))
            junk = after[match.end():] if is_last else ''
            count = self._count(sign, digits, junk, quiet=is_tail and is_last)
            row.append((label, count))
            canonical.append(f"{label}{COUNT_SEP}{digits.lstrip('0') or '0'}")
            runs += 1
            label = after[match.end():]
        if runs > 1:
            self.report('run_format')  # runs not separated by '|'

    def _count(self, sign: str, digits: str, junk: str, quiet: bool) -> int:
        """Repair a run length.

        Args:
            sign (str): ``'+'``, ``'-'`` or empty.
            digits (str): Decimal digits, possibly empty.
            junk (str): Text after the digits; non-blank makes them suspect.
            quiet (bool): The generation stopped here, so a missing or short
                count is expected and not reported.

        Returns:
            int: Cells for the run, ``0 <= n <= h * w``.
        """
        if not digits or sign == '-':
            if not quiet:
                self.report('bad_count')
            return 0
        # More than the whole grid is nonsense, not merged rows: let the run
        # fill its row and no more.
        if len(digits) > _MAX_COUNT_DIGITS or int(digits) > self.h * self.w:
            self.report('bad_count')
            return self.w
        count = int(digits)
        if count == 0 or (junk.strip() and not quiet):
            self.report('bad_count')
        return count

    def _fragment(self, text: str) -> Optional[Tuple[str, int]]:
        """Entry for text cut off by truncation, if it is a known label.

        A complete label (the background or one already seen) still tells
        how the row was going on; a partial one is dropped.
        """
        label = text.strip()
        if label and label_key(label) in self.seen:
            return (label, 0)
        return None


def _has_clean_run(line: str) -> bool:
    """Whether a line holds at least one well-formed ``LABEL *N`` run."""
    for piece in line.split('|'):
        label, _, count = piece.rpartition('*')
        if label.strip() and _DIGITS_RE.fullmatch(count.strip()):
            return True
    return False


def _layout(rows: List[Row], h: int, w: int, background: str,
            repairs: Set[str]) -> List[List[str]]:
    """Fit parsed rows into exactly ``h`` rows of ``w`` labels.

    Args:
        rows (list[Row]): Parsed rows, at least one.
        h (int): Rows wanted.
        w (int): Cells per row wanted.
        background (str): Label of padded rows.
        repairs (set[str]): Repairs, extended in place.

    Returns:
        list[list[str]]: The label grid.
    """
    room = h - len(rows)  # rows that lost their line break can fill this
    grid: List[List[str]] = []
    for row in rows[:h]:
        total = sum(count for _, count in row)
        merged = total // w
        if total % w == 0 and 2 <= merged <= room + 1:
            room -= merged - 1
            repairs.add('merged_rows')
            cells = _expand(row, merged * w)
            grid.extend(cells[i:i + w] for i in range(0, len(cells), w))
            continue
        cells = _expand(row, w)
        if total != w:
            repairs.add('row_length')
            # Pad with the row's last label: a run cut short usually goes on.
            cells.extend([row[-1][0]] * (w - len(cells)))
        grid.append(cells)
    if len(grid) != h or len(rows) > h:
        repairs.add('row_count')
    grid = grid[:h]
    grid.extend([background] * w for _ in range(h - len(grid)))
    return grid


def _expand(row: Row, limit: int) -> List[str]:
    """Expand runs into at most ``limit`` cell labels."""
    cells: List[str] = []
    for label, count in row:
        cells.extend([label] * min(count, limit - len(cells)))
    return cells


def _foreground(labels: List[List[str]], label: Optional[str],
                background: str, repairs: Set[str]) -> np.ndarray:
    """Decide which cells are foreground.

    Everything but the background is foreground, unlike the reference
    decoder, which made the first label seen the background whenever
    ``others`` was absent and so emptied full-image targets.

    Args:
        labels (list[list[str]]): The label grid.
        label (str | None): If given, only this expression is foreground.
        background (str): Background label.
        repairs (set[str]): Repairs, extended in place.

    Returns:
        np.ndarray: ``(h, w)`` bool grid.
    """
    bg_key = label_key(background)
    fg_key = None if label is None else label_key(sanitize_label(label,
                                                             background))
    verdict = {}
    for key in {label_key(cell) for row in labels for cell in row}:
        if key == bg_key:
            verdict[key] = False
        elif not key or (fg_key is not None and key != fg_key):
            repairs.add('unknown_label')
            verdict[key] = False
        else:
            verdict[key] = True
    return np.array(
        [[verdict[label_key(cell)] for cell in row] for row in labels],
        dtype=bool)


def _decode(body: str, h: int, w: int, closed: bool, tagged: bool,
            label: Optional[str], background: str,
            repairs: Set[str]) -> DecodeResult:
    """Shared part of :func:`decode_answer` and :func:`decode_body`."""
    parser = _BodyParser(h, w, background, closed=closed, tagged=tagged)
    rows = parser.parse(body)
    repairs |= parser.repairs
    if rows:
        cells = _layout(rows, h, w, background, repairs)
    else:
        if tagged:
            repairs.add('empty_body')
        cells = [[background] * w for _ in range(h)]
    grid = _foreground(cells, label, background, repairs)
    labels = np.empty((h, w), dtype=object)
    for i, row in enumerate(cells):
        labels[i, :] = row
    ordered = [kind for kind in REPAIR_KINDS if kind in repairs]
    return DecodeResult(
        grid=grid,
        labels=labels,
        status=ordered[0] if ordered else STATUS_OK,
        repairs=ordered,
        no_target=not grid.any())


def _as_text(text: Any) -> str:
    """Coerce anything a generator may hand over into str."""
    if isinstance(text, str):
        return text
    if text is None:
        return ''
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode('utf-8', errors='replace')
    return str(text)


def decode_answer(text: str,
                  grid_hw: Sequence[int] = DEFAULT_GRID_HW,
                  label: Optional[str] = None,
                  background: str = BACKGROUND) -> DecodeResult:
    """Decode a generated answer into a foreground grid; never raises.

    The body is the text after the first ``<seg>`` up to the next ``</seg>``
    (or the end). Without ``<seg>`` the whole text is searched for rows,
    starting at the first line holding a well-formed run. Rows are read with
    a tolerant parser, then each row is padded with its last label or cut to
    ``w`` cells, and rows are padded with background or cut to ``h``.

    Args:
        text (str): Generated text, e.g. ``"Sure, ...:\\n<seg>...</seg>"``.
        grid_hw (Sequence[int]): Grid size ``(h, w)``.
        label (str | None): If given, only cells with this label are
            foreground and other non-background labels are reported as
            ``'unknown_label'``; by default any non-background label is
            foreground, as in the reference decoder.
        background (str): Background label.

    Returns:
        DecodeResult: Grid, labels and the repairs made.
    """
    h, w = check_grid_hw(grid_hw)
    text = _as_text(text)
    repairs: Set[str] = set()
    start = text.find(SEG_START)
    tagged = start >= 0
    body = text[start + len(SEG_START):] if tagged else text
    if not tagged:
        repairs.add('no_seg_tag')
    end = body.find(SEG_END)
    closed = end >= 0
    if closed:
        body = body[:end]
    # Without <seg> there is no telling where the text was cut: take it whole.
    return _decode(body, h, w, closed or not tagged, tagged, label,
                   background, repairs)


def decode_body(body: str,
                grid_hw: Sequence[int] = DEFAULT_GRID_HW,
                label: Optional[str] = None,
                background: str = BACKGROUND) -> DecodeResult:
    """Decode an R-RLE body (the text between the tags); never raises.

    Args:
        body (str): R-RLE body, assumed complete (not truncated).
        grid_hw (Sequence[int]): Grid size ``(h, w)``.
        label (str | None): See :func:`decode_answer`.
        background (str): Background label.

    Returns:
        DecodeResult: Grid, labels and the repairs made.
    """
    h, w = check_grid_hw(grid_hw)
    return _decode(_as_text(body), h, w, True, True, label, background, set())
