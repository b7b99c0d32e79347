# Copyright (c) mmrefseg contributors.
"""Registries of mmrefseg: children of MMSegmentation's, scope ``mmrefseg``.

With ``default_scope = 'mmrefseg'`` a config resolves our components first and
falls back to mmseg's and then mmengine's, so ``type='PackSegInputs'`` or
``type='AdamW'`` keep working. ``locations`` imports the sub-package that
defines a component the first time a registry is queried, so configs need no
``custom_imports``. From a plain MMSeg config use
``custom_imports=dict(imports=['mmrefseg'])`` and ``type='mmrefseg.X'``.
"""
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS as MMSEG_DATA_SAMPLERS
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import EVALUATOR as MMSEG_EVALUATOR
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import INFERENCERS as MMSEG_INFERENCERS
from mmseg.registry import LOG_PROCESSORS as MMSEG_LOG_PROCESSORS
from mmseg.registry import LOOPS as MMSEG_LOOPS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
)
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import OPTIMIZERS as MMSEG_OPTIMIZERS
from mmseg.registry import PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS
from mmseg.registry import RUNNER_CONSTRUCTORS as MMSEG_RUNNER_CONSTRUCTORS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmseg.registry import TASK_UTILS as MMSEG_TASK_UTILS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISBACKENDS as MMSEG_VISBACKENDS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

SCOPE = 'mmrefseg'


def _child(name: str, parent: Registry, locations: list) -> Registry:
    return Registry(name, parent=parent, scope=SCOPE, locations=locations)


RUNNERS = _child('runner', MMSEG_RUNNERS, ['mmrefseg.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', MMSEG_RUNNER_CONSTRUCTORS,
                             ['mmrefseg.engine'])
LOOPS = _child('loop', MMSEG_LOOPS, ['mmrefseg.engine'])
# mmrefseg.testing: TimeBudgetEvalHook and ShuffledExpressionsDataset, the
# benchmark scaffolding that configs still name by type.
HOOKS = _child('hook', MMSEG_HOOKS, ['mmrefseg.engine', 'mmrefseg.testing'])
DATASETS = _child('dataset', MMSEG_DATASETS,
                  ['mmrefseg.datasets', 'mmrefseg.testing'])
DATA_SAMPLERS = _child('data sampler', MMSEG_DATA_SAMPLERS,
                       ['mmrefseg.datasets'])
TRANSFORMS = _child('transform', MMSEG_TRANSFORMS,
                    ['mmrefseg.datasets.transforms'])
MODELS = _child('model', MMSEG_MODELS, ['mmrefseg.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMSEG_MODEL_WRAPPERS,
                        ['mmrefseg.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', MMSEG_WEIGHT_INITIALIZERS,
                             ['mmrefseg.models'])
OPTIMIZERS = _child('optimizer', MMSEG_OPTIMIZERS, ['mmrefseg.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMSEG_OPTIM_WRAPPERS,
                        ['mmrefseg.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['mmrefseg.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMSEG_PARAM_SCHEDULERS,
                          ['mmrefseg.engine'])
METRICS = _child('metric', MMSEG_METRICS, ['mmrefseg.evaluation'])
EVALUATOR = _child('evaluator', MMSEG_EVALUATOR, ['mmrefseg.evaluation'])
TASK_UTILS = _child('task util', MMSEG_TASK_UTILS, ['mmrefseg.models'])
# No visualizer of our own yet: a child registry looks up its parent's
# entries without importing the parent's locations, so import mmseg's
# (SegLocalVisualizer and the vis backends) on the first query.
VISUALIZERS = _child('visualizer', MMSEG_VISUALIZERS,
                     ['mmrefseg.visualization'])
VISBACKENDS = _child('vis_backend', MMSEG_VISBACKENDS,
                     ['mmseg.visualization'])
LOG_PROCESSORS = _child('log_processor', MMSEG_LOG_PROCESSORS,
                        ['mmrefseg.engine'])
INFERENCERS = _child('inferencer', MMSEG_INFERENCERS, ['mmrefseg.apis'])
