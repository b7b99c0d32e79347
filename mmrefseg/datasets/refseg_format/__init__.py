# Copyright (c) mmrefseg contributors.
"""The refseg JSON Lines format: records, targets, converters, checker."""
from .checker import ERROR_KINDS, CheckReport, RecordIssue, RefSegChecker
from .from_mask_folder import mask_folder_to_records
from .from_refer import refer_to_records
from .phrase_budget import PhraseBudget, phrase_budget_from_config
from .records import (
                      RefSegFormatError,
                      dump_refseg_jsonl,
                      load_refseg_jsonl,
                      parse_record,
)
from .targets import MaskSizeError, read_mask_png, target_mask

__all__ = [
    'ERROR_KINDS', 'CheckReport', 'RecordIssue', 'RefSegChecker',
    'mask_folder_to_records', 'refer_to_records', 'PhraseBudget',
    'phrase_budget_from_config', 'RefSegFormatError', 'dump_refseg_jsonl',
    'load_refseg_jsonl', 'parse_record', 'MaskSizeError', 'read_mask_png',
    'target_mask'
]
