# Copyright (c) mmrefseg contributors.
import pytest
import torch

from mmrefseg.models.backbones.hf_model import (
    add_token_rows,
    build_hf_model,
    init_vit_pos_embed_sincos,
)
from mmrefseg.models.utils import sincos_2d_position_table
from mmrefseg.testing import tiny_internvl_config
from mmrefseg.utils.tokenizer import SEG_TOKEN, build_tokenizer, token_id

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _model(vocab_size=1024):
    cfg = tiny_internvl_config(vit_width=32, vit_layers=1, llm_width=64,
                               llm_layers=1, image_size=56,
                               vocab_size=vocab_size)
    return build_hf_model(None, cfg, torch.float32, 'eager')


def test_missing_checkpoint_names_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_hf_model(str(tmp_path / 'nope'), None, torch.float32, 'sdpa')
    assert 'nope' in str(err.value)
    assert 'config.json' in str(err.value)


@pytest.mark.parametrize('reinit_existing', [True, False])
def test_add_token_rows_keeps_or_resets_existing_rows(reinit_existing):
    # A padded vocabulary: the model already has a row for [SEG].
    tokenizer = build_tokenizer(TOK, [SEG_TOKEN])
    hf = _model(vocab_size=len(tokenizer) + 8)
    seg = token_id(tokenizer, SEG_TOKEN)
    emb = hf.get_input_embeddings().weight
    before = emb.detach().clone()
    ids = add_token_rows(hf, tokenizer, [SEG_TOKEN], reinit_existing)
    assert ids == [seg]
    after = hf.get_input_embeddings().weight
    assert after.shape == before.shape  # no resize was needed
    others = [i for i in range(len(tokenizer)) if i != seg]
    torch.testing.assert_close(after[others], before[others])
    if reinit_existing:
        torch.testing.assert_close(after[seg], before[others].mean(0))
    else:
        torch.testing.assert_close(after[seg], before[seg])


def test_add_token_rows_initialises_rows_the_resize_adds():
    tokenizer = build_tokenizer(TOK, [SEG_TOKEN])
    hf = _model(vocab_size=len(tokenizer) - 1)
    seg = token_id(tokenizer, SEG_TOKEN)
    assert seg == len(tokenizer) - 1
    before = hf.get_output_embeddings().weight.detach().clone()
    add_token_rows(hf, tokenizer, [SEG_TOKEN], init_new_token_rows=False)
    head = hf.get_output_embeddings().weight
    assert head.shape[0] == len(tokenizer)
    torch.testing.assert_close(head[seg], before.mean(0))


def test_sincos_init_writes_the_grid_table_and_zero_cls():
    hf = _model()
    init_vit_pos_embed_sincos(hf)
    pos = hf.model.vision_tower.embeddings.position_embeddings
    side = 56 // int(hf.config.vision_config.patch_size[0])
    assert torch.count_nonzero(pos[0, 0]) == 0
    torch.testing.assert_close(
        pos[0, 1:], sincos_2d_position_table(side, side, pos.shape[-1]))
