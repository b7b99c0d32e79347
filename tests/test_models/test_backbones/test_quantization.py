# Copyright (c) mmrefseg contributors.
"""4-bit / 8-bit LLM weights (bitsandbytes' CPU backend) + LoRA."""
import copy
import os.path as osp
import re
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import (
    load_state_dict as mmengine_load_state_dict,
)
from transformers import InternVLConfig, InternVLForConditionalGeneration

from mmrefseg.engine.hooks.checkpoint_match_hook import compare_state_dict
from mmrefseg.models.backbones import quantization as quant
from mmrefseg.registry import MODELS
from mmrefseg.testing import tiny_internvl_config

bnb = pytest.importorskip('bitsandbytes')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOK = dict(type='tiny_bpe', vocab_size=1024)
LINEARS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
           'down_proj')
QUANT_LAYER = {4: 'Linear4bit', 8: 'Linear8bitLt'}
# Relative L2 error of the LLM's last hidden states against the same
# weights unquantized (tiny random model, float32 elsewhere). Measured:
# 4-bit 0.082, 8-bit 0.0071. The lower bound proves weights changed.
REL_ERROR = {4: (0.01, 0.15), 8: (1e-4, 0.02)}


@pytest.fixture(autouse=True)
def _quiet_int8_cast_warning():
    with warnings.catch_warnings():
        # MatMul8bitLt says it casts float32 inputs to float16; expected.
        warnings.filterwarnings('ignore', message='MatMul8bitLt')
        yield


def _cfg(bits=None, **kwargs):
    cfg = dict(type='InternVLBackbone',
               config=tiny_internvl_config(vocab_size=1024), tokenizer=TOK,
               llm_lora=dict(r=8, lora_alpha=16),
               gradient_checkpointing=True, **kwargs)
    if bits:
        cfg['quantization_config'] = dict(bits=bits)
    return cfg


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(cfg)


def _batch(bb):
    """One conversation: <img> context tokens, a prompt, ``[SEG]``."""
    torch.manual_seed(1)
    ids = [1, 3] + [bb.image_token_id] * bb.num_image_tokens + [
        4, 100, 101, 200, bb.seg_token_id, 2
    ]
    input_ids = torch.tensor([ids])
    labels = torch.full_like(input_ids, -100)
    labels[0, -3:] = input_ids[0, -3:]
    pixels = torch.randn(1, 3, bb.tile_size, bb.tile_size)
    return pixels, input_ids, torch.ones_like(input_ids), labels


def _llm_linears(bb):
    return {n: m for n, m in bb.hf.model.language_model.named_modules()
            if n.rsplit('.', 1)[-1] in LINEARS}


def test_bnb_config_from_dict():
    four = quant.build_bnb_config(dict(bits=4))
    assert four.load_in_4bit and four.bnb_4bit_quant_type == 'nf4'
    assert four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert set(quant.SKIP_MODULES) <= set(four.llm_int8_skip_modules)
    eight = quant.build_bnb_config(dict(bits=8, skip_modules=['mlp.down']))
    assert eight.load_in_8bit and 'mlp.down' in eight.llm_int8_skip_modules
    with pytest.raises(ValueError, match='bits must be 4'):
        quant.build_bnb_config(dict(bits=3))
    with pytest.raises(ValueError, match=r"\['bit'\]"):
        quant.build_bnb_config(dict(bit=4))
    with pytest.raises(ValueError, match='upcast'):
        quant.build_bnb_config(dict(bits=4, upcast='norms'))


@pytest.mark.parametrize('bits', [4, 8])
def test_llm_linears_quantized_and_nothing_else(bits):
    ref = _build(_cfg(torch_dtype='bfloat16'))
    bb = _build(_cfg(bits, torch_dtype='bfloat16'))
    linears = _llm_linears(bb)
    assert len(linears) == 7 * 2
    for name, lora_layer in linears.items():
        base = lora_layer.base_layer  # LoRA wraps the quantized layer
        assert type(base).__name__ == QUANT_LAYER[bits], name
        weight = base.weight
        assert quant.is_quantized_weight(weight) and not weight.requires_grad
        n = base.in_features * base.out_features
        # Storage: 4 bits = half a byte per weight, 8 bits = one byte.
        assert weight.numel() * weight.element_size() == n * bits // 8
        assert weight.dtype == (torch.uint8 if bits == 4 else torch.int8)
    names = quant.quantized_linear_names(bb.hf)
    assert len(names) == len(linears)
    assert all('language_model.layers.' in n for n in names)
    # ViT, projector, embeddings, lm_head: untouched and equal to the
    # unquantized model (same seed).
    for part in ('vision_tower', 'multi_modal_projector'):
        a = getattr(ref.hf.model, part).state_dict()
        b = getattr(bb.hf.model, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    assert not quant.is_quantized_weight(bb.hf.lm_head.weight)
    assert bb.hf.lm_head.weight.dtype == torch.bfloat16
    # Footprint of the LLM: measured equals the estimate for the plain HF
    # model, and the quantized Linear weights take 4/16 (4-bit) or 8/16
    # (8-bit) of bf16 plus scales.
    bf16_linears = sum(m.weight.numel() * 2
                       for m in _llm_linears(ref).values())
    measured = quant.weight_bytes(bb.hf)['quantized']
    plain = InternVLForConditionalGeneration(
        InternVLConfig(**tiny_internvl_config(vocab_size=1024)))
    assert measured == quant.estimate_weight_bytes(
        plain, quant.build_bnb_config(dict(bits=bits)))['quantized']
    ratio = measured / bf16_linears
    assert bits / 16 < ratio < bits / 16 + 0.15, ratio
    # Frozen parts keep the config's dtype (upcast='none').
    frozen = [p for p in bb.parameters()
              if not p.requires_grad and not quant.is_quantized_weight(p)]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)


@pytest.mark.parametrize('bits', [4, 8])
def test_output_close_to_unquantized(bits):
    ref = _build(_cfg()).eval()
    bb = _build(_cfg(bits)).eval()
    batch = _batch(ref)
    with torch.no_grad():
        a = ref(*batch).last_hidden_state
        b = bb(*batch).last_hidden_state
    rel = float((a - b).norm() / a.norm())
    low, high = REL_ERROR[bits]
    assert low < rel < high, rel


@pytest.mark.parametrize('bits,upcast', [(4, 'none'), (8, 'none'),
                                         (4, 'all')])
def test_training_step_changes_only_lora_and_new_rows(bits, upcast):
    cfg = _cfg(bits, torch_dtype='bfloat16')
    cfg['quantization_config']['upcast'] = upcast
    bb = _build(cfg).train()
    # 'all' is peft's cast: every non-quantized parameter float32.
    frozen = {p.dtype for p in bb.parameters()
              if not quant.is_quantized_weight(p)}
    assert frozen == ({torch.float32} if upcast == 'all' else
                      {torch.float32, torch.bfloat16})
    assert bb.hf.is_gradient_checkpointing
    before = {n: p.detach().clone() for n, p in bb.named_parameters()}
    trainable = [p for p in bb.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0)
    out = bb(*_batch(bb))
    loss = out.lm_loss + out.seg_states.float().pow(2).mean()
    loss.backward()
    optim.step()
    changed = {n for n, p in bb.named_parameters()
               if not torch.equal(before[n], p.detach())}
    assert changed
    assert all('lora_' in n or n.endswith('new_rows') for n in changed)
    # Gradients reached every LoRA B through the quantized layers (lora_B
    # starts at zero, so lora_A has no gradient at step one).
    lora_b = {n for n, _ in bb.named_parameters() if 'lora_B' in n}
    assert len(lora_b) == 14 and lora_b <= changed
    assert any(n.endswith('new_rows') for n in changed)


@pytest.mark.parametrize('bits', [4, 8])
def test_state_dict_round_trip(bits):
    """A checkpoint of a quantized model loads back (resume, load_from)."""
    a = _build(_cfg(bits)).eval()
    b = _build(_cfg(bits), seed=1).eval()
    batch = _batch(a)
    key = 'hf.model.language_model.layers.0.mlp.up_proj.base_layer.weight'
    assert not torch.equal(a.state_dict()[key], b.state_dict()[key])
    state = a.state_dict()
    # CheckpointMatchHook's comparison sees the same keys and shapes.
    assert not compare_state_dict(b, state)
    with torch.no_grad():
        # Into a fresh model, as MMEngine resumes (before any forward), by
        # torch's loader and by MMEngine's.
        b.load_state_dict(copy.deepcopy(state), strict=True)
        c = _build(_cfg(bits), seed=2).eval()
        mmengine_load_state_dict(c, copy.deepcopy(state), strict=True)
        expect = a(*batch).last_hidden_state
        assert torch.equal(expect, b(*batch).last_hidden_state)
        assert torch.equal(expect, c(*batch).last_hidden_state)


def test_pretrained_load_equals_in_place_quantization(tmp_path):
    """``pretrained`` goes through transformers' quantizing loader; random
    weights through :func:`quantize_linear_layers_`: same bits."""
    torch.manual_seed(0)
    hf = InternVLForConditionalGeneration(
        InternVLConfig(**tiny_internvl_config(vocab_size=1024)))
    hf.save_pretrained(tmp_path)
    cfg = quant.build_bnb_config(dict(bits=4))
    loaded = InternVLForConditionalGeneration.from_pretrained(
        tmp_path, quantization_config=cfg)
    in_place = quant.quantize_linear_layers_(copy.deepcopy(hf), cfg)
    assert quant.weight_bytes(in_place) == quant.estimate_weight_bytes(
        hf, cfg) == quant.weight_bytes(loaded)
    names = quant.quantized_linear_names(loaded)
    assert names == quant.quantized_linear_names(in_place) and names
    for name in names:
        x = loaded.get_submodule(name).weight
        y = in_place.get_submodule(name).weight
        assert torch.equal(x.data, y.data), name
        assert torch.equal(x.quant_state.absmax, y.quant_state.absmax)
    # The backbone built from the directory is quantized and runs.
    bb = MODELS.build(dict(_cfg(4), config=None, pretrained=str(tmp_path)))
    assert len(quant.quantized_linear_names(bb.hf)) == len(names)
    with torch.no_grad():
        assert torch.isfinite(bb(*_batch(bb)).last_hidden_state).all()


def test_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match='freeze_llm=True'):
        MODELS.build(_cfg(4, freeze_llm=False))
    real_find_spec = quant.importlib.util.find_spec
    monkeypatch.setattr(
        quant.importlib.util, 'find_spec',
        lambda name, *a: None if name == 'bitsandbytes' else real_find_spec(
            name, *a))
    with pytest.raises(ImportError, match=re.escape('mmrefseg[quant]')):
        MODELS.build(_cfg(4))
    monkeypatch.undo()
    monkeypatch.setattr(bnb, 'supported_torch_devices', ('cuda', ))
    with pytest.raises(RuntimeError, match='has no cpu backend'):
        MODELS.build(_cfg(8))


def test_fsdp_refused_with_reason():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/mllmseg/internvl8b_refcoco_qlora.py'))
    fsdp = Config.fromfile(
        osp.join(ROOT, 'configs/mllmseg/internvl8b_refcoco_fsdp.py'))
    cfg.runner_type, cfg.strategy = fsdp.runner_type, fsdp.strategy
    from mmrefseg.apis.runner import build_runner
    with pytest.raises(ValueError, match='FSDP shards flat parameters'):
        build_runner(cfg)  # refused before anything is built
    quant.check_quantized_strategy(fsdp)  # unquantized FSDP is fine


@pytest.mark.parametrize('path,base', [
    ('configs/mllmseg/internvl8b_refcoco_qlora.py',
     'configs/mllmseg/internvl8b_refcoco.py'),
    ('configs/self1e/internvl3_8b_refcoco_qlora.py',
     'configs/self1e/internvl3_8b_refcoco.py'),
])
def test_qlora_configs_and_their_memory_comment(path, base):
    cfg = Config.fromfile(osp.join(ROOT, path))
    plain = Config.fromfile(osp.join(ROOT, base))
    q = cfg.model.backbone.pop('quantization_config')
    assert q == dict(bits=4)
    assert cfg.model == plain.model  # the recipe, LoRA rank included
    assert cfg.optim_wrapper == plain.optim_wrapper
    # The weight sizes in the comment are computed on the meta device.
    text = open(osp.join(ROOT, path)).read()
    with torch.device('meta'):
        hf = InternVLForConditionalGeneration(InternVLConfig(
            **plain.model.backbone.config.to_dict())).to(torch.bfloat16)
    bf16 = sum(quant.weight_bytes(hf).values()) / 1e9
    assert f'{bf16:.2f} GB' in re.search(r'bf16 \(the plain.*', text)[0]
    for bits, label in ((4, r'4-bit NF4 \(this config\)'),
                        (8, r'8-bit LLM\.int8\(\)')):
        est = quant.estimate_weight_bytes(
            hf, quant.build_bnb_config(dict(bits=bits)))
        line = re.search(label + r'.*', text)[0]
        assert f'{sum(est.values()) / 1e9:.2f} GB' in line, line
        assert f"{est['quantized'] / 1e9:.2f} quantized" in line, line


def test_export_refuses_quantized_weights():
    from mmrefseg.converters.refsegmentor_export import merge_lora_layers
    bb = _build(_cfg(4))
    with pytest.raises(ValueError, match='4/8-bit weights'):
        merge_lora_layers(bb.hf)
    assert merge_lora_layers(_build(_cfg()).hf) == 14  # bf16: merges


@pytest.mark.parametrize('in_features', [32, 64])
def test_eval_forward_leaves_4bit_weights_as_quantized(in_features,
                                                      monkeypatch):
    """On AVX512-BF16 CPUs bitsandbytes would repack the weight on a no-grad
    forward (bf16 block scales; a RuntimeError below 64 inputs): the
    backbone keeps its 4-bit layers on the generic kernel, so a validation
    pass neither fails nor changes the frozen base."""
    # Every layer built here believes the CPU has the fast kernel, so the
    # backbone's opt-out is checked on any CPU (no forward runs on these).
    with monkeypatch.context() as patch:
        patch.setattr(bnb.nn.modules, 'has_avx512bf16', lambda: True)
        bb = _build(_cfg(4, freeze_llm=True))
    layers = [m for m in bb.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(in_features, 32, compute_dtype=torch.float32)
    layer = layer.to('cpu').eval()
    quant.keep_generic_cpu_kernel(layer)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        out = layer(torch.randn(2, in_features))
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    after = layer.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype, key
        assert torch.equal(before[key], after[key]), key
