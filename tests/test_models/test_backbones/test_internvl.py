# Copyright (c) mmrefseg contributors.
import copy

import pytest
import torch
from transformers import InternVLForConditionalGeneration

from mmrefseg.models.backbones import InternVLBackbone
from mmrefseg.models.processors import InternVLProcessor
from mmrefseg.models.utils import (
    NewTokenEmbedding,
    NewTokenLMHead,
    sincos_2d_position_table,
)
from mmrefseg.registry import MODELS
from mmrefseg.testing import tiny_internvl_config

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _batch(bb: InternVLBackbone, answers, tiles=1):
    """Hand-built conversations: [im_start] <img> ctx*N </img> text answer."""
    n = bb.num_image_tokens * tiles
    seqs, labels = [], []
    for ans in answers:
        ids = [1, 3] + [bb.image_token_id] * n + [4, 100, 101] + ans + [2]
        lab = [-100] * (len(ids) - len(ans) - 1) + ans + [2]
        seqs.append(torch.tensor(ids))
        labels.append(torch.tensor(lab))
    length = max(len(s) for s in seqs)
    input_ids = torch.zeros(len(seqs), length, dtype=torch.long)
    lab = torch.full((len(seqs), length), -100)
    mask = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, (s, row) in enumerate(zip(seqs, labels)):
        input_ids[i, :len(s)] = s
        lab[i, :len(row)] = row
        mask[i, :len(s)] = 1
    size = bb.tile_size
    pixels = torch.randn(len(answers) * tiles, 3, size, size)
    return pixels, input_ids, mask, lab


def test_forward_shapes_and_seg_positions(tiny_backbone_cfg):
    bb = MODELS.build(tiny_backbone_cfg)
    seg, rej = bb.seg_token_id, bb.rej_token_id
    pixels, ids, mask, labels = _batch(bb, [[200, seg, 201, seg], [rej, 7]])
    out = bb(pixels, ids, mask, labels)
    c_llm, c_vit = bb.llm_channels, bb.vit_channels
    assert out.vit_features[-1].shape == (2, c_vit, 4, 4)
    assert out.llm_image_states.shape == (2, c_llm, 2, 2)
    assert out.seg_states.shape == (2, c_llm)
    assert out.seg_to_sample.tolist() == [0, 0]
    assert out.slot_is_seg.tolist() == [True, True, False]
    assert out.slot_positions[:, 0].tolist() == [0, 0, 1]
    # LISA convention: the state of the token *before* each [SEG].
    pos = (ids[0] == seg).nonzero().flatten()
    assert torch.equal(out.seg_states, out.last_hidden_state[0, pos - 1])
    assert out.slot_rej_score.shape == (3, )
    assert torch.isfinite(out.lm_loss)


def test_image_state_shift_option(tiny_backbone_cfg):
    torch.manual_seed(0)
    shifted = MODELS.build(tiny_backbone_cfg)
    plain = MODELS.build(dict(tiny_backbone_cfg, image_state_offset=0,
                              seg_state_offset=0))
    plain.load_state_dict(shifted.state_dict())
    pixels, ids, mask, _ = _batch(shifted, [[shifted.seg_token_id]])
    a = shifted(pixels, ids, mask)
    b = plain(pixels, ids, mask)
    img_pos = (ids[0] == shifted.image_token_id).nonzero().flatten()
    hidden = a.last_hidden_state[0]
    # -1 shift: starts at <img> (position before the first context token)
    # and omits the last image position, as the released MLLMSeg reads it.
    expect_shift = hidden[img_pos - 1].T.reshape_as(a.llm_image_states[0])
    expect_plain = hidden[img_pos].T.reshape_as(b.llm_image_states[0])
    assert torch.allclose(a.llm_image_states[0], expect_shift)
    assert torch.allclose(b.llm_image_states[0], expect_plain)
    assert not torch.allclose(a.llm_image_states, b.llm_image_states)
    seg_pos = (ids[0] == shifted.seg_token_id).nonzero().flatten()
    assert torch.allclose(b.seg_states, hidden[seg_pos])


@pytest.mark.parametrize('question_first', [False, True])
def test_image_states_read_the_expression_only_when_it_comes_first(
        tiny_backbone_cfg, question_first):
    torch.manual_seed(0)
    bb = MODELS.build(dict(tiny_backbone_cfg, image_state_offset=0)).eval()
    conv = InternVLProcessor(bb.tokenizer, bb.num_image_tokens,
                             question_first=question_first)
    pixels = torch.randn(1, 3, bb.tile_size, bb.tile_size)
    states = []
    with torch.no_grad():
        for text in ('the red circle', 'the leftmost blue star'):
            ids = conv([text])['input_ids'][None]
            states.append(bb(pixels, ids, torch.ones_like(ids)))
    # Causal attention: image tokens see the text only if it precedes them.
    same = torch.allclose(states[0].llm_image_states,
                          states[1].llm_image_states)
    assert same != question_first
    assert not torch.allclose(states[0].seg_states, states[1].seg_states)


def test_lm_loss_ignores_everything_but_answer(tiny_backbone_cfg):
    bb = MODELS.build(tiny_backbone_cfg)
    pixels, ids, mask, labels = _batch(bb, [[200, 201]])
    out = bb(pixels, ids, mask, labels)
    hidden = out.last_hidden_state[0]
    keep = (labels[0, 1:] != -100).nonzero().flatten()
    logits = bb.lm_logits(hidden[keep])
    expected = torch.nn.functional.cross_entropy(logits, labels[0, keep + 1])
    assert torch.allclose(out.lm_loss, expected)


def test_only_new_token_rows_train_when_llm_frozen(tiny_backbone_cfg):
    cfg = dict(tiny_backbone_cfg, freeze_vit=True, freeze_projector=True,
               freeze_llm=True, train_new_token_rows=True)
    bb = MODELS.build(cfg)
    emb = bb.hf.get_input_embeddings()
    assert isinstance(emb, NewTokenEmbedding)
    assert isinstance(bb.hf.lm_head, NewTokenLMHead)
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable == {
        'hf.model.language_model.embed_tokens.new_rows',
        'hf.lm_head.new_rows'
    }
    # New rows start at the mean of the trained rows.
    new_ids = [bb.seg_token_id, bb.rej_token_id]
    old = [i for i in range(emb.weight.shape[0]) if i not in new_ids][:784]
    assert torch.allclose(emb.new_rows[0], emb.weight[old].mean(0), atol=1e-5)
    before = emb.weight.detach().clone()
    opt = torch.optim.AdamW([p for p in bb.parameters() if p.requires_grad],
                            lr=0.1)
    seg = bb.seg_token_id
    pixels, ids, mask, labels = _batch(bb, [[200, seg, 201]])
    bb(pixels, ids, mask, labels).lm_loss.backward()
    opt.step()
    assert torch.equal(emb.weight, before)
    assert not torch.allclose(emb.new_rows[0], before[seg])
    # The module's output uses the trained rows for the new ids only.
    vec = emb(torch.tensor([seg, 200]))
    assert torch.allclose(vec[0], emb.new_rows[0])
    assert torch.allclose(vec[1], before[200])
    merged = emb.merged_weight()
    assert torch.allclose(merged[seg], emb.new_rows[0])


def test_lora_only_adapters_train(tiny_backbone_cfg):
    cfg = dict(tiny_backbone_cfg, freeze_vit=True, freeze_projector=True,
               freeze_llm=True, llm_lora=dict(r=4, lora_alpha=8))
    bb = MODELS.build(cfg)
    names = [n for n, p in bb.named_parameters() if p.requires_grad]
    lora = [n for n in names if 'lora_' in n]
    # 7 projections x 2 layers x (A, B)
    assert len(lora) == 28
    assert all('language_model' in n for n in lora)
    assert set(names) - set(lora) == {
        'hf.model.language_model.embed_tokens.new_rows', 'hf.lm_head.new_rows'
    }


def test_from_pretrained_roundtrip(tmp_path, tiny_backbone_cfg):
    """Real loading code on a saved tiny checkpoint (safetensors)."""
    torch.manual_seed(1)
    config = copy.deepcopy(tiny_backbone_cfg['config'])
    from transformers import InternVLConfig
    hf = InternVLForConditionalGeneration(InternVLConfig(**config)).eval()
    hf.save_pretrained(tmp_path / 'ckpt')
    assert (tmp_path / 'ckpt' / 'model.safetensors').exists()
    bb = InternVLBackbone(pretrained=str(tmp_path / 'ckpt'), tokenizer=TOK,
                          extra_special_tokens=(),
                          freeze_llm=False).eval()
    for (n1, p1), (n2, p2) in zip(hf.state_dict().items(),
                                  bb.hf.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope')):
        InternVLBackbone(pretrained=str(tmp_path / 'nope'), tokenizer=TOK)


def test_meta_device_build_of_8b_dims():
    """The 8B architecture builds without weights (no memory, no files)."""
    cfg = tiny_internvl_config(vit_width=1024, vit_layers=24,
                               llm_width=4096, llm_layers=32,
                               image_size=448, vocab_size=92553,
                               text_model_type='llama')
    cfg['text_config'].update(intermediate_size=14336, num_attention_heads=32,
                              num_key_value_heads=8)
    cfg['vision_config'].update(num_attention_heads=16,
                                intermediate_size=4096)
    with torch.device('meta'):
        bb = InternVLBackbone(config=cfg, tokenizer=TOK,
                              llm_lora=dict(r=64, lora_alpha=128))
    assert bb.num_image_tokens == 256
    assert bb.llm_channels == 4096
    n_lora = sum(p.numel() for n, p in bb.named_parameters()
                 if 'lora_' in n)
    # r * (in + out) summed over q,k,v,o,gate,up,down of 32 Llama layers.
    per_layer = 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 +
                      (4096 + 14336) * 3)
    assert n_lora == 32 * per_layer


def test_sincos_position_table_values():
    table = sincos_2d_position_table(2, 3, 8)
    assert table.shape == (6, 8)
    # Patch (row 1, col 2) is index 5: x = 2 in the first half, y = 1 after.
    omega = torch.tensor([1.0, 0.01])
    expected = torch.cat([(2 * omega).sin(), (2 * omega).cos(),
                          (1 * omega).sin(), (1 * omega).cos()])
    torch.testing.assert_close(table[5], expected)
    with pytest.raises(ValueError, match='dim % 4'):
        sincos_2d_position_table(2, 2, 6)


def test_vit_pos_embed_sincos_init_survives_init_weights(tiny_backbone_cfg):
    cfg = copy.deepcopy(tiny_backbone_cfg)
    bb = MODELS.build(cfg)
    pos = bb.hf.model.vision_tower.embeddings.position_embeddings
    assert not pos.detach().abs().any(), 'transformers inits it at zero'
    cfg['vit_pos_embed_init'] = 'sincos'
    bb = MODELS.build(cfg)
    bb.init_weights()  # what the runner does before training
    pos = bb.hf.model.vision_tower.embeddings.position_embeddings
    side = bb.tile_size // bb.patch_size
    assert torch.equal(pos[0, 0], torch.zeros_like(pos[0, 0]))
    torch.testing.assert_close(
        pos[0, 1:], sincos_2d_position_table(side, side, pos.shape[-1]))
    assert pos.requires_grad  # a starting point, still learned


def test_vit_pos_embed_init_refuses_pretrained(tmp_path):
    with pytest.raises(ValueError, match='overwrite'):
        InternVLBackbone(pretrained=str(tmp_path), tokenizer=TOK,
                         vit_pos_embed_init='sincos')
    with pytest.raises(ValueError, match="'sincos'"):
        InternVLBackbone(config=tiny_internvl_config(), tokenizer=TOK,
                         vit_pos_embed_init='learned')
