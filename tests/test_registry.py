# Copyright (c) mmrefseg contributors.
"""Our components resolve from mmrefseg configs and from plain MMSeg ones."""
import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_default_scope_mmrefseg_without_custom_imports():
    # A fresh process: nothing imported but the registry; `locations`
    # must import our modules, and mmseg/mmengine types must still resolve.
    out = _run('''
        from mmengine.registry import DefaultScope, init_default_scope
        init_default_scope('mmrefseg')
        from mmrefseg.registry import METRICS, MODELS, TRANSFORMS, HOOKS
        print(MODELS.get('LightMaskDecoderHead').__name__)
        print(METRICS.get('RefSegMetric').__name__)
        print(TRANSFORMS.get('PackSegInputs').__name__)   # mmseg's
        print(MODELS.get('EncoderDecoder').__name__)      # mmseg's
        print(HOOKS.get('CheckpointHook').__name__)       # mmengine's
        print(HOOKS.get('SegVisualizationHook').__name__)
    ''')
    assert out.split() == [
        'LightMaskDecoderHead', 'RefSegMetric', 'PackSegInputs',
        'EncoderDecoder', 'CheckpointHook', 'SegVisualizationHook'
    ]


def test_testing_scaffolding_and_mmseg_visualizer_resolve_by_name():
    # Benchmark scaffolding lives in mmrefseg.testing, outside the component
    # packages; configs still name it by type through the `locations`.
    out = _run('''
        from mmengine.registry import init_default_scope
        init_default_scope('mmrefseg')
        from mmrefseg.registry import DATASETS, HOOKS, VISUALIZERS
        for cls in (HOOKS.get('TimeBudgetEvalHook'),
                    DATASETS.get('ShuffledExpressionsDataset'),
                    VISUALIZERS.get('SegLocalVisualizer')):
            print(cls.__module__)
    ''')
    assert out.split() == [
        'mmrefseg.testing.time_budget_eval_hook',
        'mmrefseg.testing.shuffled_expressions',
        'mmseg.visualization.local_visualizer'
    ]


def test_plain_mmseg_config_with_custom_imports():
    out = _run('''
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmseg.registry import METRICS, MODELS
        cfg = Config(dict(
            default_scope='mmseg',
            custom_imports=dict(imports=['mmrefseg'],
                                allow_failed_imports=False),
            head=dict(type='mmrefseg.LightMaskDecoderHead', llm_channels=32,
                      embed_dims=16, num_heads=2, ffn_channels=16),
            metric=dict(type='mmrefseg.RefSegMetric')))
        init_default_scope(cfg.default_scope)
        head = MODELS.build(cfg.head)
        metric = METRICS.build(cfg.metric)
        print(type(head).__module__, type(metric).__name__)
    ''')
    assert out.split() == ['mmrefseg.models.heads.light_mask_decoder',
                           'RefSegMetric']
