# Copyright (c) mmrefseg contributors.
"""Scaffolding for tests, benchmarks and the quick start, not for models.

Like ``mmengine.testing``: it ships with the package (``tools/quickstart.py``
and ``benchmarks/`` need it after a plain ``pip install``) but holds nothing
a trained model depends on. Its registered components (``TimeBudgetEvalHook``,
``ShuffledExpressionsDataset``) are still found by type name from any config:
the ``HOOKS`` and ``DATASETS`` registries list this package in their
``locations`` and :func:`mmrefseg.utils.register_all_modules` imports it.
"""
from .shuffled_expressions import ShuffledExpressionsDataset
from .time_budget_eval_hook import TimeBudgetEvalHook
from .tiny_bpe import train_tiny_bpe
from .tiny_internvl import tiny_internvl_config

__all__ = [
    'ShuffledExpressionsDataset', 'TimeBudgetEvalHook', 'tiny_internvl_config',
    'train_tiny_bpe'
]
