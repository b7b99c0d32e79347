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


def _processor(cfg: Config) -> dict:
    """The backbone's processor options (the conversation's settings)."""
    return cfg.model.backbone.get('processor') or {}


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
    # The model writes the conversation: no pipeline tokenizes.
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for transform in dataset.get('pipeline') or []:
            assert 'tokenizer' not in transform, (loader, transform)


PAPER_EVAL = [p for p in CONFIGS if p.endswith('_paper_eval.py')]


@pytest.mark.parametrize('path', PAPER_EVAL)
def test_paper_eval_configs(path):
    """MLLMSeg's teacher-forced per-image protocol (its test scripts)."""
    cfg = _load(path)
    loader = cfg.test_dataloader
    assert loader.batch_size == 1
    assert loader.dataset.test_mode and loader.dataset.test_grouping == 'image'
    conv = _processor(cfg)
    assert conv.test_prompt_style == 'mllmseg_paper_eval'
    assert conv.prompt_style == 'mllmseg'  # training is unchanged
    test_cfg = cfg.model.test_cfg
    assert test_cfg.mode == 'teacher_forced' and test_cfg.resize == 'probs'
    metric = cfg.test_evaluator
    assert (metric.giou_mode, metric.rec_iou_rule, metric.rec_box_style) == (
        'image', '>', 'mllmseg')
    name = osp.basename(path)
    if 'grefcoco' in name or '_gres' in name:
        assert conv.test_reject_no_target
        assert test_cfg.use_rej and test_cfg.keep_rejected_masks
        assert test_cfg.rej_decision == 'argmax_teacher_forced'
        assert metric.gres and metric.gres_rule == 'mllmseg'
        assert loader.dataset.type == 'GRefCOCODataset'
    else:
        assert not conv.get('test_reject_no_target')


def test_default_configs_keep_the_clean_protocol():
    for path in ('configs/mllmseg/internvl8b_refcoco.py',
                 'configs/mllmseg/internvl8b_grefcoco.py',
                 'configs/mllmseg/released/mllmseg_internvl2_5_8b_res.py',
                 'configs/mllmseg/released/mllmseg_internvl2_5_8b_gres.py'):
        cfg = _load(path)
        dataset = cfg.test_dataloader.dataset
        assert dataset.get('test_grouping', 'expression') == 'expression'
        conv = _processor(cfg)
        assert conv.prompt_style == 'mllmseg'
        assert conv.get('test_prompt_style') in (None, 'mllmseg')
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
    # The converted directory's tokenizer (it holds the released ids).
    assert backbone.get('tokenizer', backbone.pretrained) == hf
    assert not backbone.get('llm_lora') and not backbone.get('vit_lora')
    assert list(backbone.extra_special_tokens) == [
        t for t in spec.token_names if t != '<IMG_CONTEXT>']


MLLMSEG_SIZES = ['configs/mllmseg/internvl1b_refcoco.py',
                 'configs/mllmseg/internvl2b_refcoco.py',
                 'configs/mllmseg/internvl4b_refcoco.py',
                 'configs/mllmseg/internvl8b_refcoco.py']


def test_mllmseg_size_configs_differ_only_in_their_model_base():
    import re
    texts = []
    for path in MLLMSEG_SIZES:
        with open(osp.join(ROOT, path)) as f:
            lines = [ln for ln in f if not ln.startswith('#')]
        texts.append(re.sub(r'internvl2_5_\d+b', 'SIZE', ''.join(lines)))
    assert len(set(texts)) == 1
    # ... and get what their model base says: bos for InternLM2 only.
    bos = {p: _processor(_load(p)).get('bos') for p in MLLMSEG_SIZES}
    assert bos == {MLLMSEG_SIZES[0]: False, MLLMSEG_SIZES[1]: True,
                   MLLMSEG_SIZES[2]: False, MLLMSEG_SIZES[3]: True}
    cfg = _load(MLLMSEG_SIZES[0])
    assert cfg.model.backbone.pretrained == 'checkpoints/InternVL2_5-1B-hf'
    assert cfg.model.backbone.config.text_config.hidden_size == 896


TINY = ['configs/mllmseg/mllmseg_tiny_synth.py',
        'configs/mllmseg/mllmseg_hybrid_tiny_synth.py',
        'configs/self1e/self1e_tiny_synth.py',
        'configs/text4seg/text4seg_tiny_synth.py']


@pytest.mark.parametrize('path', TINY)
def test_tiny_configs_share_one_model_base(path):
    with open(osp.join(ROOT, path)) as f:
        text = f.read()
    base = _load('configs/_base_/models/tiny_internvl.py').model.backbone
    backbone = _load(path).model.backbone
    for key in ('config', 'tokenizer'):
        assert backbone[key] == base[key]
    assert 'tiny_internvl.py' in text or 'mllmseg_tiny_synth.py' in text


def test_the_hybrid_tiny_config_says_what_it_departs_from():
    with open(osp.join(ROOT, TINY[1])) as f:
        head = f.readline()
    assert 'HYBRID' in head
    pure, hybrid = _load(TINY[0]).model, _load(TINY[1]).model
    assert not _processor(_load(TINY[0])).get('question_first')
    assert not pure.decode_head.get('dual_perception')
    assert pure.get('auxiliary_head') is None
    assert pure.backbone.image_state_offset == -1  # MLLMSeg's shift
    assert _processor(_load(TINY[1])).question_first
    assert hybrid.decode_head.dual_perception
    assert hybrid.auxiliary_head.type == 'LLMStateAuxHead'
