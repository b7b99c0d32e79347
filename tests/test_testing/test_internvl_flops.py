# Copyright (c) mmrefseg contributors.
"""The analytic FLOP counts equal what the counter counts on real modules,
and give the issue's bound at InternVL2.5-8B's shapes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmrefseg.registry import MODELS
from mmrefseg.testing import tiny_internvl_config
from mmrefseg.testing.internvl_flops import (
    flop_counter,
    image_tokens,
    llm_flops,
    multi_expression_flops,
    projector_flops,
    vit_flops,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module', params=['llama', 'qwen2'])
def tiny(request):
    arch = tiny_internvl_config(vit_width=64, vit_layers=2, llm_width=128,
                                llm_layers=2, image_size=56, vocab_size=1024,
                                text_model_type=request.param)
    backbone = MODELS.build(dict(
        type='InternVLBackbone', config=arch,
        tokenizer=dict(type='tiny_bpe', vocab_size=1024)))
    return arch, backbone.hf.eval()


def _count(fn) -> int:
    with torch.no_grad(), flop_counter() as counter:
        fn()
    return counter.get_total_flops()


def test_vit_and_projector_match_the_counter(tiny):
    arch, hf = tiny
    pixels = torch.randn(2, 3, 56, 56)
    counted = _count(lambda: hf.model.get_image_features(
        pixel_values=pixels, vision_feature_layer=-1,
        vision_feature_select_strategy='default'))
    vision, text = arch['vision_config'], arch['text_config']
    assert counted == vit_flops(vision, tiles=2) + projector_flops(
        vision, text, 0.5, tiles=2)
    assert image_tokens(vision, 0.5) == 4


def test_llm_prefill_and_cached_suffix_match_the_counter(tiny):
    arch, hf = tiny
    text = arch['text_config']
    llm = hf.model.language_model
    ids = torch.randint(10, 500, (1, 20))
    out = {}

    def prefill():
        out['cache'] = llm(input_ids=ids, use_cache=True).cache

    assert _count(prefill) == llm_flops(text, 20)
    suffix = torch.randint(10, 500, (1, 7))
    assert _count(lambda: llm(input_ids=suffix, cache=out['cache'],
                              use_cache=True)) == llm_flops(text, 7, 20)
    hidden = torch.randn(1, 3, text['hidden_size'])
    # The LM head as a plain V x C projection (the backbone's wrapper adds
    # a second product for its added tokens' rows).
    weight = torch.randn(text['vocab_size'], text['hidden_size'])
    assert _count(lambda: hidden @ weight.T) == llm_flops(
        text, 0, logits_tokens=3)


def test_issue_numbers_at_internvl2_5_8b():
    arch = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/internvl2_5_8b.py')
    ).backbone_arch
    vision, text = arch['vision_config'], arch['text_config']
    # InternViT-300M on one 448 px tile, ~0.6-0.7 TFLOP; the LLM over its
    # 256 image tokens ~3.6 TFLOP; a 30-token suffix ~0.4 TFLOP.
    assert 0.6e12 < vit_flops(vision) < 0.8e12
    assert 3.5e12 < llm_flops(text, 256) < 3.9e12
    assert 0.4e12 < llm_flops(text, 30, 256) < 0.5e12
    # MLLMSeg: encoding once bounds the speed-up near 4-5x at K=7.
    mllmseg = multi_expression_flops(arch, 260, 30, 7, 'prefix',
                                     head_flops=0.06e12)
    assert 4.0 < mllmseg.ratio < 5.0
    # K=1: nothing to share (the split prefill only skips the attention
    # of prefix keys over suffix queries the whole one counts).
    one = multi_expression_flops(arch, 260, 30, 1, 'prefix')
    assert 1.0 <= one.ratio < 1.01
    assert multi_expression_flops(arch, 260, 30, 1, 'vit').ratio == 1.0
    # SELF1E shares the ViT only: a small bound.
    self1e = multi_expression_flops(arch, 260, 30, 7, 'vit')
    assert 1.0 < self1e.ratio < 1.3
    # Generated tokens cost the same in both paths and lower the bound.
    gen = multi_expression_flops(arch, 260, 30, 7, 'prefix',
                                 generated_tokens=150)
    assert 1.5 < gen.ratio < mllmseg.ratio
    with pytest.raises(ValueError, match='share'):
        multi_expression_flops(arch, 260, 30, 7, 'llm')
