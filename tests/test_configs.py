# Copyright (c) mmrefseg contributors.
"""Every config under configs/ parses; protocol and released configs say
what their comments promise."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmrefseg.registry import METRICS, MODELS, TRANSFORMS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True))


def _load(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def _conversation(pipeline):
    convs = [t for t in pipeline or []
             if isinstance(t, dict) and t.get('type') == 'BuildConversation']
    assert len(convs) <= 1
    return convs[0] if convs else None


def test_configs_are_found():
    assert len(CONFIGS) > 20
    assert 'configs/mllmseg/internvl8b_refcoco_paper_eval.py' in CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses(path):
    cfg = _load(path)
    model = cfg.get('model')
    if model is not None:
        for part in ('', 'backbone', 'neck', 'decode_head'):
            sub = model.get(part) if part else model
            if sub is not None:
                assert MODELS.get(sub['type']) is not None, sub['type']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for transform in dataset.get('pipeline') or []:
            assert TRANSFORMS.get(transform['type']) is not None
    evaluator = cfg.get('test_evaluator')
    if evaluator is not None and model is not None:
        METRICS.build(evaluator)  # checks the metric's options
    # The pipelines tokenize with the backbone's tokenizer.
    if model is not None and 'backbone' in model:
        backbone = model.backbone
        tokenizer = backbone.get('tokenizer', backbone.get('pretrained'))
        for loader in ('train_dataloader', 'test_dataloader'):
            dataset = (cfg.get(loader) or {}).get('dataset') or {}
            conv = _conversation(dataset.get('pipeline'))
            if conv is not None:
                assert conv['tokenizer'] == tokenizer, (loader, conv)


PAPER_EVAL = [p for p in CONFIGS if p.endswith('_paper_eval.py')]


@pytest.mark.parametrize('path', PAPER_EVAL)
def test_paper_eval_configs(path):
    """MLLMSeg's teacher-forced per-image protocol (its released test)."""
    cfg = _load(path)
    loader = cfg.test_dataloader
    assert loader.batch_size == 1
    assert loader.dataset.test_mode and loader.dataset.test_grouping == 'image'
    conv = _conversation(loader.dataset.pipeline)
    assert conv.prompt_style == 'mllmseg_paper_eval' and conv.test_mode
    test_cfg = cfg.model.test_cfg
    assert test_cfg.mode == 'teacher_forced' and test_cfg.resize == 'probs'
    metric = cfg.test_evaluator
    assert (metric.giou_mode, metric.rec_iou_rule, metric.rec_box_style) == (
        'image', '>', 'mllmseg')
    name = osp.basename(path)
    if 'grefcoco' in name or '_gres' in name:
        assert conv.reject_no_target
        assert test_cfg.use_rej and test_cfg.keep_rejected_masks
        assert test_cfg.rej_decision == 'argmax_teacher_forced'
        assert metric.gres and metric.gres_rule == 'mllmseg'
        assert loader.dataset.type == 'GRefCOCODataset'
    else:
        assert not conv.get('reject_no_target')


def test_default_configs_keep_the_clean_protocol():
    for path in ('configs/mllmseg/internvl8b_refcoco.py',
                 'configs/mllmseg/internvl8b_grefcoco.py',
                 'configs/mllmseg/released/mllmseg_internvl2_5_8b_res.py',
                 'configs/mllmseg/released/mllmseg_internvl2_5_8b_gres.py'):
        cfg = _load(path)
        dataset = cfg.test_dataloader.dataset
        assert dataset.get('test_grouping', 'expression') == 'expression'
        assert _conversation(dataset.pipeline).prompt_style == 'mllmseg'
        assert cfg.model.test_cfg.get('rej_decision',
                                      'seg_vs_rej') == 'seg_vs_rej'
        assert cfg.test_evaluator.get('gres_rule', 'rela') == 'rela'


RELEASED = [p for p in CONFIGS if '/released/' in p]


@pytest.mark.parametrize('path', RELEASED)
def test_released_configs_bake_in_the_converter_overrides(path):
    """tools/test.py <released cfg> <OUT>/mmrefseg.pth needs no
    --cfg-options: the converter's backbone overrides are in the config."""
    from mmrefseg.converters.mllmseg import mllmseg_spec
    from mmrefseg.converters.self1e import self1e_spec
    cfg = _load(path)
    spec = self1e_spec() if '/self1e/' in path else mllmseg_spec()
    backbone = cfg.model.backbone
    for key, value in spec.backbone_options.items():
        assert backbone[key] == value, key
    hf = backbone.pretrained
    assert hf.startswith('checkpoints/') and hf.endswith('-mmrefseg/hf')
    assert backbone.tokenizer == hf
    assert not backbone.get('llm_lora') and not backbone.get('vit_lora')
    assert list(backbone.extra_special_tokens) == [
        t for t in spec.token_names if t != '<IMG_CONTEXT>']
