# Copyright (c) mmrefseg contributors.
"""LoRA fine-tuning unfreezes the same parts for every LLM family.

InternVL2.5-2B/8B carry InternLM2 converted to Llama (``model_type='llama'``),
InternVL2.5-1B/4B and InternVL3 carry Qwen2(.5), later releases Qwen3. With
the LLM frozen and LoRA on, what trains must be: LoRA A/B on every attention
and MLP projection of every LLM layer, and the rows of the added tokens in
both the input embedding and the LM head (the released MLLMSeg GRES code
left Qwen's head frozen because it named the head by InternLM2's name).
"""
import re

import pytest
import torch

from mmrefseg.models.backbones import InternVLBackbone
from mmrefseg.models.utils import NewTokenEmbedding, NewTokenLMHead
from mmrefseg.testing import tiny_internvl_config

TOK = dict(type='tiny_bpe', vocab_size=1024)
LLM_TARGETS = {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj',
               'up_proj', 'down_proj'}
LORA = re.compile(r'^hf\.model\.language_model\.layers\.(\d+)\.'
                  r'(self_attn|mlp)\.(\w+)\.lora_[AB]\.default\.weight$')
FAMILIES = [('llama', False), ('qwen2', False), ('qwen2', True),
            ('qwen3', False)]


def _build(family: str, tied: bool, **kw) -> InternVLBackbone:
    cfg = tiny_internvl_config(vit_width=32, llm_width=64, llm_layers=2,
                               image_size=56, vocab_size=1024,
                               text_model_type=family)
    cfg['text_config']['tie_word_embeddings'] = tied
    cfg['tie_word_embeddings'] = tied
    torch.manual_seed(0)
    return InternVLBackbone(
        config=cfg, tokenizer=TOK, extra_special_tokens=('[SEG]', '[REJ]'),
        freeze_vit=True, freeze_projector=True, freeze_llm=True,
        train_new_token_rows=True, llm_lora=dict(r=4, lora_alpha=8), **kw)


@pytest.mark.parametrize('family,tied', FAMILIES)
def test_lora_and_new_token_rows_are_all_that_trains(family, tied):
    bb = _build(family, tied)
    assert bb.text_model_type == family
    assert bb.hf.config.text_config.model_type == family
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    rows = {n for n in trainable if n.endswith('new_rows')}
    lora = trainable - rows
    assert all(LORA.match(n) for n in lora), sorted(lora)
    hit = {(int(m.group(1)), m.group(3))
           for m in (LORA.match(n) for n in lora)}
    n_layers = bb.hf.config.text_config.num_hidden_layers
    assert hit == {(i, t) for i in range(n_layers) for t in LLM_TARGETS}
    assert len(lora) == 2 * n_layers * len(LLM_TARGETS)
    # The head is lm_head in every family, wrapped to train the new rows.
    emb, head = bb.hf.get_input_embeddings(), bb.hf.lm_head
    assert isinstance(emb, NewTokenEmbedding)
    assert isinstance(head, NewTokenLMHead)
    assert bb.hf.get_output_embeddings() is head
    assert head.new_rows.requires_grad and emb.new_rows.requires_grad
    if tied:  # one set of rows shared by both uses
        assert head.new_rows is emb.new_rows
        assert rows == {'hf.model.language_model.embed_tokens.new_rows'}
    else:
        assert head.new_rows is not emb.new_rows
        assert rows == {'hf.model.language_model.embed_tokens.new_rows',
                        'hf.lm_head.new_rows'}
    assert not emb.weight.requires_grad and not head.weight.requires_grad
    assert not any(p.requires_grad
                   for p in bb.hf.model.vision_tower.parameters())
    assert not any(p.requires_grad
                   for p in bb.hf.model.multi_modal_projector.parameters())


@pytest.mark.parametrize('family,tied', FAMILIES)
def test_gradients_reach_lora_and_both_new_token_rows(family, tied):
    bb = _build(family, tied)
    seg, rej = bb.seg_token_id, bb.rej_token_id
    ids = torch.tensor([[1, 100, 101, seg, 102, rej, 2]])
    hidden = bb.hf.model.language_model(input_ids=ids).last_hidden_state
    logits = bb.lm_logits(hidden)
    # Predicting [SEG] reads the head's [SEG] row; inputs read the
    # embedding's rows.
    loss = torch.nn.functional.cross_entropy(
        logits[0, :-1], torch.tensor([100, 101, seg, 102, rej, 2]))
    loss.backward()
    emb, head = bb.hf.get_input_embeddings(), bb.hf.lm_head
    assert emb.new_rows.grad is not None and emb.new_rows.grad.abs().sum() > 0
    assert head.new_rows.grad is not None
    assert head.new_rows.grad.abs().sum() > 0
    grads = [p.grad for n, p in bb.named_parameters() if 'lora_B' in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert emb.weight.grad is None and head.weight.grad is None


def test_self1e_style_lora_on_vit_and_trained_projector():
    bb = _build('qwen2', False, vit_lora=dict(r=4, lora_alpha=8))
    bb_names = {n for n, p in bb.named_parameters() if p.requires_grad}
    vit = {n for n in bb_names if n.startswith('hf.model.vision_tower.')}
    assert vit and all('.lora_' in n for n in vit)
    bb2 = InternVLBackbone(
        config=bb.hf.config.to_dict(), tokenizer=TOK,
        extra_special_tokens=('[SEG]', '[SEGT]'), freeze_vit=True,
        freeze_projector=False, freeze_llm=True,
        llm_lora=dict(r=4, lora_alpha=8))
    assert all(p.requires_grad
               for p in bb2.hf.model.multi_modal_projector.parameters())
