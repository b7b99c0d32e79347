# Copyright (c) mmrefseg contributors.
"""A trained RefSegmentor -> one folder (native InternVL + heads) and back."""
import copy
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from repo_scripts import load_script
from transformers import AutoTokenizer, InternVLForConditionalGeneration

from mmrefseg.converters import export_refsegmentor, load_exported_model
from mmrefseg.converters.exported_model import CONFIG_FILE, HEADS_FILE
from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
NUM_IMAGE_TOKENS = 4  # 56 px tile, patch 14, pixel shuffle 0.5
QUIET = dict(log=lambda msg: None)


def _segmentor_cfg(backbone: dict) -> dict:
    return dict(
        type='RefSegmentor',
        data_preprocessor=dict(type='RefSegDataPreProcessor'),
        backbone=backbone,
        neck=dict(type='DSFFNeck', embed_dims=32, num_heads=2,
                  ffn_channels=32, dropout=0.0),
        decode_head=dict(type='LightMaskDecoderHead', embed_dims=32,
                         num_heads=2, ffn_channels=32, dropout=0.0))


def _pipeline():
    return [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMasks'),
        dict(type='InternVLImageTransform', image_size=56),
        dict(type='PackRefSegInputs'),
    ]


def _train(model: torch.nn.Module, seed: int) -> None:
    """Stand-in for training: move every trainable weight off its init,
    LoRA B included (it starts at zero, where merging changes nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=gen) * 0.05)


def _save(model, tmp_path) -> str:
    path = str(tmp_path / 'iter_10.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=10)),
               path)
    return path


VARIANTS = {
    # A frozen LLM: only the [SEG]/[REJ] rows (and the heads) train.
    'new_token_rows': dict(freeze_vit=True, freeze_projector=True,
                           freeze_llm=True),
    # LoRA on the LLM and the ViT, plus the new token rows.
    'lora': dict(freeze_vit=True, freeze_projector=True, freeze_llm=True,
                 llm_lora=dict(r=4, lora_alpha=8, lora_dropout=0.0),
                 vit_lora=dict(r=2, lora_alpha=4, lora_dropout=0.0)),
    # Trained from scratch (the tiny configs): nothing wrapped.
    'full': dict(freeze_vit=False, freeze_projector=False,
                 freeze_llm=False),
}


@pytest.fixture(params=sorted(VARIANTS))
def trained(request, tiny_backbone_cfg, tmp_path):
    backbone = dict(tiny_backbone_cfg, **VARIANTS[request.param])
    cfg = _segmentor_cfg(backbone)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg)).eval()
    _train(model, seed=1)
    ckpt = _save(model, tmp_path)
    out = str(tmp_path / 'export')
    result = export_refsegmentor(Config(dict(model=cfg)), ckpt, out, **QUIET)
    return request.param, model, out, result


def _inputs(backbone):
    tok = backbone.tokenizer
    seg, rej = backbone.seg_token_id, backbone.rej_token_id
    text = tok('<|im_start|>user\n<img>', add_special_tokens=False).input_ids
    tail = tok('</img>\nsegment the red circle<|im_end|>\n'
               '<|im_start|>assistant\nSure, [SEG] and [REJ].',
               add_special_tokens=False).input_ids
    ids = text + [backbone.image_token_id] * NUM_IMAGE_TOKENS + tail
    assert seg in ids and rej in ids
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator()
                         .manual_seed(3))
    return torch.tensor([ids]), pixels


def test_exported_logits_equal_the_backbone_inside(trained):
    variant, model, out, result = trained
    ids, pixels = _inputs(model.backbone)
    with torch.no_grad():
        want = model.backbone.hf(input_ids=ids, pixel_values=pixels).logits
    hf = InternVLForConditionalGeneration.from_pretrained(
        out, dtype=torch.float32).eval()
    with torch.no_grad():
        got = hf(input_ids=ids, pixel_values=pixels).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Rows of the added tokens: their logits and their embeddings.
    seg, rej = model.backbone.seg_token_id, model.backbone.rej_token_id
    torch.testing.assert_close(got[..., [seg, rej]], want[..., [seg, rej]],
                               rtol=1e-5, atol=1e-5)
    emb = model.backbone.hf.get_input_embeddings()(torch.tensor([seg, rej]))
    torch.testing.assert_close(
        hf.get_input_embeddings().weight[[seg, rej]], emb)
    assert result['merged_lora'] == (
        0 if variant != 'lora' else
        sum('lora_A' in n and n.endswith('weight')
            for n, _ in model.named_parameters()))
    if variant == 'lora':
        # The merge matters: the base weights alone give other logits.
        assert result['merged_lora'] > 0
        with torch.no_grad(), _disabled_lora(model):
            base = model.backbone.hf(input_ids=ids,
                                     pixel_values=pixels).logits
        assert not torch.allclose(base, want, atol=1e-3)


class _disabled_lora:
    """Turn every injected LoRA layer off for a block."""

    def __init__(self, model):
        from peft.tuners.lora import LoraLayer
        self.layers = [m for m in model.modules()
                       if isinstance(m, LoraLayer)]

    def __enter__(self):
        for layer in self.layers:
            layer.enable_adapters(False)

    def __exit__(self, *exc):
        for layer in self.layers:
            layer.enable_adapters(True)


def test_folder_is_a_native_checkpoint_with_its_tokenizer(trained):
    variant, model, out, _ = trained
    tok = AutoTokenizer.from_pretrained(out, trust_remote_code=False)
    orig = model.backbone.tokenizer
    for token in ('[SEG]', '[REJ]', '<IMG_CONTEXT>', '<|im_end|>'):
        assert tok.convert_tokens_to_ids(token) == \
            orig.convert_tokens_to_ids(token)
    text = 'Sure, the mask of the left red circle is [SEG].'
    assert tok(text).input_ids == orig(text).input_ids
    cfg = json.load(open(osp.join(out, 'config.json')))
    assert cfg['architectures'] == ['InternVLForConditionalGeneration']
    rows = model.backbone.hf.get_input_embeddings().weight.shape[0]
    assert cfg['text_config']['vocab_size'] == rows >= len(orig)
    exported_cfg = Config.fromfile(osp.join(out, CONFIG_FILE))
    backbone = exported_cfg.model.backbone
    assert backbone.pretrained == out and backbone.tokenizer == out
    assert backbone.init_new_token_rows is False
    assert 'config' not in backbone and 'llm_lora' not in backbone


def test_backbone_builds_from_the_folder(trained):
    """InternVLBackbone(pretrained=folder) runs the same model: the
    states it gives the heads are the original's."""
    variant, model, out, _ = trained
    ids, pixels = _inputs(model.backbone)
    backbone = MODELS.build(dict(type='InternVLBackbone', pretrained=out,
                                 init_new_token_rows=False)).eval()
    assert backbone.seg_token_id == model.backbone.seg_token_id
    with torch.no_grad():
        want = model.backbone(pixels, ids)
        got = backbone(pixels, ids)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.seg_states, want.seg_states,
                               rtol=1e-5, atol=1e-5)


def test_round_trip_predictions(trained, synthetic_root):
    variant, model, out, result = trained
    assert result['heads'] > 0
    loaded = load_exported_model(out)
    val = DATASETS.build(
        dict(type='RefCOCODataset', data_root=synthetic_root,
             dataset_name='synthrefcoco', split='val', test_mode=True,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=_pipeline()))
    batch = pseudo_collate([val[i] for i in range(3)])
    with torch.no_grad():
        want = model.test_step(copy.deepcopy(batch))
        got = loaded.test_step(copy.deepcopy(batch))
    for a, b in zip(got, want):
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data,
                                   rtol=1e-5, atol=1e-5)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


@pytest.mark.parametrize('trained', ['lora'], indirect=True)
def test_moved_folder_loads_from_where_it_is(trained, tmp_path):
    import shutil
    variant, model, out, _ = trained
    moved = str(tmp_path / 'shared' / 'model')
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    loaded = load_exported_model(moved)
    assert loaded.cfg.model.backbone.pretrained == moved
    assert loaded.backbone.tokenizer.name_or_path == moved
    want = model.state_dict()
    heads = {k: v for k, v in loaded.state_dict().items()
             if not k.startswith('backbone.')}
    assert heads and set(heads) == {k for k in want
                                    if not k.startswith('backbone.')}
    for key, value in heads.items():
        assert torch.equal(value, want[key]), key
    # The exported config builds no LoRA: it is merged.
    assert not any('lora' in k for k in loaded.state_dict())


def test_bad_inputs_have_clear_errors(tmp_path, tiny_backbone_cfg):
    with pytest.raises(FileNotFoundError, match=HEADS_FILE):
        (tmp_path / 'x').mkdir()
        for name in (CONFIG_FILE, 'mmrefseg_export.json', 'config.json'):
            (tmp_path / 'x' / name).write_text('{}')
        load_exported_model(str(tmp_path / 'x'))
    cfg = _segmentor_cfg(dict(tiny_backbone_cfg))
    model = MODELS.build(copy.deepcopy(cfg))
    state = model.state_dict()
    state.pop('decode_head.conv2.weight')
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=state), path)
    with pytest.raises(KeyError, match='bad.pth.*conv2.weight'):
        export_refsegmentor(Config(dict(model=cfg)), path,
                            str(tmp_path / 'out'), **QUIET)


def test_cli(tmp_path, tiny_backbone_cfg, capsys):
    cli = load_script('tools/model_converters/refsegmentor_to_hf.py')
    cfg = _segmentor_cfg(dict(tiny_backbone_cfg))
    cfg_path = str(tmp_path / 'tiny.py')
    Config(dict(model=cfg)).dump(cfg_path)
    model = MODELS.build(copy.deepcopy(cfg))
    ckpt = _save(model, tmp_path)
    out = str(tmp_path / 'out')
    result = cli.main([cfg_path, ckpt, out, '--dtype', 'bfloat16',
                       '--cfg-options', 'model.lm_loss_weight=0.5'])
    assert 'native InternVL + tokenizer' in capsys.readouterr().out
    assert json.load(open(osp.join(out, 'config.json')))['dtype'] == \
        'bfloat16'
    exported = Config.fromfile(osp.join(out, CONFIG_FILE))
    assert exported.model.lm_loss_weight == 0.5
    assert exported.model.backbone.torch_dtype == 'bfloat16'
    assert result['heads'] == len([k for k in model.state_dict()
                                   if not k.startswith('backbone.')])
