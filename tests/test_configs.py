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
    assert loader.dataset.test_mode
    assert loader.dataset.test_grouping == 'image_one_prompt'
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


def _flat(d, prefix=''):
    """{'a.b.c': leaf} of a nested config dict (lists kept whole)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_text4seg_bf16_stage2_differs_only_in_speed_and_schedule():
    """The bf16 stage-2 config is the float32 one with autocast, eager
    attention (CPU SDPA's bf16 backward ate the gain), compiled blocks,
    fused AdamW, one process holding the base's global batch of 8 (4 in
    each of two) with its loader in-process, and a cosine fitted to its own
    30 minutes; the model, data and LR are the same."""
    fp32 = _flat(_load('configs/text4seg/text4seg_tiny_synth_ft.py')
                 .to_dict())
    bf16_cfg = _load('configs/text4seg/text4seg_tiny_synth_ft_bf16.py')
    bf16 = _flat(bf16_cfg.to_dict())
    changed = {k for k in fp32.keys() | bf16.keys()
               if fp32.get(k) != bf16.get(k)}
    assert changed == {
        'model.backbone.attn_implementation', 'model.backbone.compile_blocks',
        'model.backbone.vision_cache', 'optim_wrapper.type',
        'optim_wrapper.dtype', 'optim_wrapper.optimizer.fused',
        'train_dataloader.batch_size',
        'train_dataloader.num_workers', 'train_dataloader.persistent_workers',
        'max_iters', 'param_scheduler', 'train_cfg.max_iters',
        'train_cfg.val_interval', 'default_hooks.checkpoint.interval'}
    assert bf16_cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert bf16_cfg.optim_wrapper.optimizer.lr == 2e-4
    assert bf16_cfg.model.backbone.attn_implementation == 'eager'
    assert bf16_cfg.train_dataloader.batch_size == \
        2 * _load('configs/text4seg/text4seg_tiny_synth_ft.py'
                  ).train_dataloader.batch_size
    cosine = bf16_cfg.param_scheduler[1]
    assert cosine.type == 'CosineAnnealingLR'
    assert cosine.end == bf16_cfg.train_cfg.max_iters == 13500
    # The cache is valid only because the base freezes the ViT.
    assert bf16_cfg.model.backbone.vision_cache is True
    assert bf16_cfg.model.backbone.freeze_vit is True


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


CUSTOM = [p for p in CONFIGS if p.startswith('configs/custom/')]
CUSTOM_BASES = {
    'mllmseg_internvl2_5_1b_custom.py':
    'configs/mllmseg/internvl1b_refcoco.py',
    'mllmseg_internvl2_5_2b_custom.py':
    'configs/mllmseg/internvl2b_refcoco.py',
    'mllmseg_internvl2_5_8b_custom.py':
    'configs/mllmseg/internvl8b_refcoco.py',
    'mllmseg_internvl2_5_8b_released_custom.py':
    'configs/mllmseg/released/mllmseg_internvl2_5_8b_res.py',
    'self1e_internvl3_2b_custom.py': 'configs/self1e/internvl3_2b_refcoco.py',
    'self1e_internvl3_8b_custom.py': 'configs/self1e/internvl3_8b_refcoco.py',
    'self1e_internvl3_8b_released_custom.py':
    'configs/self1e/released/self1e_8b.py',
    'mllmseg_tiny_custom.py': 'configs/mllmseg/mllmseg_hybrid_tiny_synth.py',
}


def _train_sets(dataset):
    return dataset.datasets if dataset.type == 'MixedReferDataset' else [
        dataset
    ]


@pytest.mark.parametrize('path', CUSTOM)
def test_custom_configs_swap_only_the_datasets(path):
    """configs/custom/*: the method config with RefSegJsonlDataset data;
    pipelines, model and schedule inherited, not restated."""
    assert set(CUSTOM_BASES) == {osp.basename(p) for p in CUSTOM}
    cfg, base = _load(path), _load(CUSTOM_BASES[osp.basename(path)])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ours, theirs = cfg[loader].dataset, base[loader].dataset
        assert ours.pipeline == theirs.pipeline, loader
        sets = _train_sets(ours) if loader == 'train_dataloader' else [ours]
        for dataset in sets:
            assert dataset.type == 'RefSegJsonlDataset'
            assert dataset.ann_file.endswith('.jsonl')
            if loader != 'train_dataloader':
                assert dataset.test_mode
                assert dict(dataset.data_prefix) == dict(img_path='',
                                                         mask_path='')
        if loader == 'train_dataloader':
            assert [d.get('max_expressions_per_sample', 1) for d in sets] == [
                t.get('max_expressions_per_sample', 1)
                for t in _train_sets(theirs)
            ][:len(sets)]
    backbone = cfg.model.backbone
    if 'tiny' not in path:
        assert backbone.llm_lora and backbone.train_new_token_rows
        assert backbone.freeze_llm and backbone.freeze_vit
        assert ('self1e' in path) == bool(backbone.get('vit_lora'))
        base_model = dict(base.model)
        if 'released' not in path:
            assert cfg.model == base_model
    if 'released' in path:
        assert cfg.load_from.endswith('-mmrefseg/mmrefseg.pth')
        assert backbone.init_new_token_rows is False


EIGHT_B_CUSTOM = [p for p in CUSTOM if '_8b_' in p]


@pytest.mark.parametrize('path', EIGHT_B_CUSTOM)
def test_8b_custom_configs_build_on_meta_device(path):
    """The whole RefSegmentor of the 8B custom configs builds without
    weights; what trains is LoRA + new token rows (+ SELF1E's parts)."""
    import torch

    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = _load(path)
    backbone = cfg.model.backbone
    # No checkpoint on disk: the architecture of the config, the tiny
    # tokenizer (whose <IMG_CONTEXT> id is 5).
    backbone.update(pretrained=None,
                    tokenizer=dict(type='tiny_bpe', vocab_size=1024),
                    gradient_checkpointing=False)
    backbone.config.image_token_id = 5
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    llm = [n for n in trainable if '.language_model.' in n]
    assert llm and all('.lora_' in n or n.endswith('new_rows') for n in llm)
    assert any(n == 'backbone.hf.lm_head.new_rows' for n in trainable)
    text = backbone.config.text_config
    n_layers = text.num_hidden_layers
    lora_llm = [n for n in llm if '.lora_A.' in n]
    assert len(lora_llm) == 7 * n_layers
    assert any(n.startswith('decode_head.') for n in trainable)


def test_quickstart_config_is_the_hybrid_at_168px():
    """The quick start's model differs from the hybrid only in image size
    and warm-up; the processor writes 36 image tokens per tile."""
    hybrid = _load('configs/mllmseg/mllmseg_hybrid_tiny_synth.py')
    quick = _load('configs/mllmseg/mllmseg_hybrid_tiny_synth_quickstart.py')
    for cfg in (hybrid, quick):
        size = cfg.model.backbone.config.vision_config.image_size
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            transform = [t for t in cfg[loader].dataset.pipeline
                         if t['type'] == 'InternVLImageTransform'][0]
            assert transform['image_size'] == size
    assert quick.model.backbone.config.vision_config.image_size == 168
    assert quick.model.backbone.config.image_seq_length == 36
    q_model, h_model = quick.model.to_dict(), hybrid.model.to_dict()
    for d in (q_model, h_model):
        d['backbone']['config']['vision_config'].pop('image_size')
        d['backbone']['config'].pop('image_seq_length')
    assert q_model == h_model
    assert [s['end'] for s in quick.param_scheduler] == [30]
    model = MODELS.build(quick.model)
    assert model.backbone.num_image_tokens == 36
