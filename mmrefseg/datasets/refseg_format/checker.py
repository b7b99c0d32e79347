# Copyright (c) mmrefseg contributors.
"""Validation of a refseg JSON Lines file before training.

Every record is checked; problems are collected (not raised) as
:class:`RecordIssue` entries naming the line, the record id, the kind of
problem and the reason, and counted per kind for a summary table.
"""
import os.path as osp
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .records import RefSegFormatError, iter_jsonl, parse_record, resolve_path
from .targets import MaskSizeError, read_mask_png, target_mask

#: Every error kind the checker reports, with what it means.
ERROR_KINDS = OrderedDict(
    invalid_json='the line is not valid JSON',
    bad_record='the record does not follow the format',
    duplicate_id='another record has the same id',
    empty_phrase='a phrase is empty',
    phrase_too_long='a phrase has more tokens than the model allows',
    missing_image='the image file does not exist',
    unreadable_image='the image cannot be decoded',
    image_size_mismatch='height/width differ from the image file',
    missing_mask='the mask PNG does not exist',
    unreadable_mask='the mask PNG (or RLE) cannot be decoded',
    mask_size_mismatch='the mask size differs from the image size',
    empty_mask='a target mask has no foreground pixel',
    bad_box='a box is empty or outside the image',
)


@dataclass
class RecordIssue:
    """One problem of one record.

    Args:
        line (int): 1-based line of the record.
        record_id (Any): Its id (None when the line did not parse).
        kind (str): A key of :data:`ERROR_KINDS`.
        message (str): The reason.
    """
    line: int
    record_id: Any
    kind: str
    message: str

    def __str__(self) -> str:
        rid = '' if self.record_id is None else f' id={self.record_id!r}'
        return f'line {self.line}{rid}: {self.kind}: {self.message}'


@dataclass
class CheckReport:
    """What :meth:`RefSegChecker.check_file` found.

    Args:
        path (str): The checked file.
        issues (list[RecordIssue]): Every problem, in file order.
        stats (Counter): Counts of records, images, phrases, targets by
            kind, no-target and box-only records, records per split.
    """
    path: str
    issues: List[RecordIssue] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """True when no error was found."""
        return not self.issues

    def error_counts(self) -> Counter:
        """Number of issues per kind."""
        return Counter(issue.kind for issue in self.issues)

    def summary_table(self) -> str:
        """A two-part text table: contents, then errors per kind."""
        rows = [(key, str(value)) for key, value in sorted(self.stats.items())]
        counts = self.error_counts()
        rows += [('-' * 8, '')]
        rows += [(f'error: {kind}', str(counts.get(kind, 0)))
                 for kind in ERROR_KINDS]
        rows += [('records with errors',
                  str(len({i.line for i in self.issues})))]
        width = max(len(r[0]) for r in rows)
        lines = [f'{self.path}', '=' * (width + 12)]
        lines += [f'{name:<{width}}  {value:>8}' for name, value in rows]
        return '\n'.join(lines)


class RefSegChecker:
    """Checks records of a refseg JSON Lines file against their files.

    Args:
        data_root (str): Root of relative paths (as the dataset's).
        img_prefix (str): Image folder relative to ``data_root``.
        mask_prefix (str): Mask folder relative to ``data_root``.
        tokenizer (Any, optional): A tokenizer (``__call__`` giving
            ``input_ids``) used to count phrase tokens.
        max_tokens (int, optional): Most tokens a phrase may have; needs
            ``tokenizer`` unless counted by whitespace words
            (``tokenizer=None`` counts words).
        decode_images (bool): Decode every image fully (finds truncated
            files) instead of reading only its header.
    """

    def __init__(self,
                 data_root: str = '',
                 img_prefix: str = '',
                 mask_prefix: str = '',
                 tokenizer: Any = None,
                 max_tokens: Optional[int] = None,
                 decode_images: bool = True) -> None:
        self.img_root = resolve_path(data_root, img_prefix)
        self.mask_root = resolve_path(data_root, mask_prefix)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.decode_images = decode_images
        self._image_sizes: Dict[str, Tuple[Optional[tuple], str]] = {}

    def count_tokens(self, phrase: str) -> int:
        """Tokens of a phrase (whitespace words without a tokenizer)."""
        if self.tokenizer is None:
            return len(phrase.split())
        return len(self.tokenizer(phrase, add_special_tokens=False)
                   ['input_ids'])

    def check_file(self,
                   path: str,
                   progress: Optional[Callable[[], None]] = None
                   ) -> CheckReport:
        """Check every record of ``path``.

        Args:
            path (str): The file.
            progress (Callable, optional): Called once per line.

        Returns:
            CheckReport: Issues and statistics.
        """
        report = CheckReport(path)
        seen_ids: Dict[Any, int] = {}
        images = set()
        for line, value in iter_jsonl(path):
            if progress is not None:
                progress()
            if isinstance(value, RefSegFormatError):
                report.issues.append(
                    RecordIssue(line, None, value.kind, value.reason))
                continue
            try:
                rec = parse_record(value, line, path)
            except RefSegFormatError as e:
                report.issues.append(
                    RecordIssue(line, e.record_id, e.kind, e.reason))
                continue
            issues = report.issues
            report.stats['records'] += 1
            split = rec['split']
            report.stats['records without split' if split is None else
                         f'records of split {split}'] += 1
            if rec['id'] in seen_ids:
                issues.append(
                    RecordIssue(line, rec['id'], 'duplicate_id',
                                f'also used on line {seen_ids[rec["id"]]}'))
            else:
                seen_ids[rec['id']] = line
            images.add(rec['image'])
            issues.extend(self.check_record(rec, report.stats))
        report.stats['images'] = len(images)
        return report

    def check_record(self, rec: dict, stats: Counter) -> List[RecordIssue]:
        """Issues of one parsed record; updates ``stats``.

        Args:
            rec (dict): A record of :func:`parse_record`.
            stats (Counter): Statistics to update.

        Returns:
            list[RecordIssue]: Its problems.
        """
        issues: List[RecordIssue] = []

        def add(kind: str, message: str) -> None:
            issues.append(RecordIssue(rec['line'], rec['id'], kind, message))

        stats['phrases'] += len(rec['phrases'])
        if self.max_tokens is not None:
            for k, phrase in enumerate(rec['phrases']):
                n = self.count_tokens(phrase)
                if n > self.max_tokens:
                    add('phrase_too_long', f'phrases[{k}] has {n} tokens, '
                        f'more than {self.max_tokens}')
        size = self._image_size(rec, add)
        if not rec['targets']:
            stats['no-target records'] += 1
        if any(t['kind'] == 'box' for t in rec['targets']):
            stats['box-only records'] += 1
        for k, target in enumerate(rec['targets']):
            stats[f'targets: {target["kind"]}'] += 1
            self._check_target(target, k, size, add)
        return issues

    def _image_size(self, rec: dict,
                    add: Callable[[str, str], None]) -> Optional[tuple]:
        """Declared size checked against the file; None when unknown."""
        path = resolve_path(self.img_root, rec['image'])
        if path not in self._image_sizes:
            self._image_sizes[path] = self._read_image(path)
        actual, error = self._image_sizes[path]
        declared = ((rec['height'], rec['width'])
                    if rec['height'] is not None else None)
        if actual is None:
            kind = 'missing_image' if not osp.isfile(path) else \
                'unreadable_image'
            add(kind, error)
            return declared
        if declared is not None and declared != actual:
            add('image_size_mismatch',
                f'height/width say {declared[0]}x{declared[1]} but {path} is '
                f'{actual[0]}x{actual[1]} (HxW)')
        return actual

    def _read_image(self, path: str) -> Tuple[Optional[tuple], str]:
        if not osp.isfile(path):
            return None, f'{path} does not exist'
        try:
            with Image.open(path) as img:
                if self.decode_images:
                    img.load()
                width, height = img.size
        except Exception as e:  # PIL raises several types for bad files
            return None, f'cannot decode {path}: {e}'
        return (int(height), int(width)), ''

    def _check_target(self, target: dict, k: int, size: Optional[tuple],
                      add: Callable[[str, str], None]) -> None:
        name = f'targets[{k}]'
        box = target['box']
        if box is not None:
            x1, y1, x2, y2 = box
            if x2 <= x1 or y2 <= y1:
                add('bad_box', f'{name}.box {box} has no area')
            elif size is not None and (x1 >= size[1] or y1 >= size[0]
                                       or x2 <= 0 or y2 <= 0):
                add('bad_box', f'{name}.box {box} lies outside the '
                    f'{size[0]}x{size[1]} image')
        if target['kind'] == 'box':
            return
        mask_path = None
        if target['kind'] == 'mask':
            mask_path = resolve_path(self.mask_root, target['data'])
            if not osp.isfile(mask_path):
                add('missing_mask', f'{name}: {mask_path} does not exist')
                return
        if size is None:
            # No image size to decode polygons/RLE at: only check the PNG.
            if mask_path is not None:
                self._check_png_alone(mask_path, target['value'], name, add)
            return
        try:
            mask = target_mask(target, size[0], size[1], mask_path)
        except MaskSizeError as e:
            add('mask_size_mismatch', f'{name}: {e}')
            return
        except Exception as e:  # decoders raise several types
            add('unreadable_mask', f'{name}: {e}')
            return
        if not mask.any():
            where = mask_path or target['kind']
            add('empty_mask', f'{name} ({where}) has no foreground pixel')

    @staticmethod
    def _check_png_alone(mask_path: str, value: Optional[int], name: str,
                         add: Callable[[str, str], None]) -> None:
        try:
            mask = read_mask_png(mask_path, value)
        except Exception as e:  # decoders raise several types
            add('unreadable_mask', f'{name}: {e}')
            return
        if not np.any(mask):
            add('empty_mask', f'{name} ({mask_path}) has no foreground pixel')
