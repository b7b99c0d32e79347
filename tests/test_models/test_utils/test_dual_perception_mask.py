# Copyright (c) mmrefseg contributors.
"""SELF1E's dual-perception mask: the matrix, and its effect in the LLM."""
from types import SimpleNamespace

import pytest
import torch

from mmrefseg.models.utils import (
    dual_perception_mask,
    dual_perception_mask_for,
    to_additive_mask,
)
from mmrefseg.registry import MODELS

IMG, SEG, PAD = 5, 7, 0
# A worked example of SELF1E's rule: sys, <img>, I1, I2, I3, </img>,
# question, "\n", [SEG], ".", <|im_end|>, PAD; "x" = blocked, "." = allowed.
EXAMPLE_IDS = [10, 3, IMG, IMG, IMG, 4, 11, 12, SEG, 13, 2, PAD]
EXAMPLE_MATRIX = """
. x x x x x x x x x x x
. . x x x x x x x x x x
. . . . . x x x . x x x
. . . . . x x x . x x x
. . . . . x x x . x x x
. . . . . . x x x x x x
. . . . . . . x x x x x
. . . . . . . . x x x x
. . . . . . . . . x x x
. . . . . . . . . . x x
. . . . . . . . . . . x
. . . . . . . . . . . .
"""


def _parse(matrix: str) -> torch.Tensor:
    rows = [line.split() for line in matrix.strip().splitlines()]
    return torch.tensor([[c == '.' for c in row] for row in rows])


def _causal(length: int) -> torch.Tensor:
    return torch.ones(length, length, dtype=torch.bool).tril()


def test_matches_the_self1e_example_matrix():
    ids = torch.tensor([EXAMPLE_IDS])
    valid = (ids != PAD).long()
    mask = dual_perception_mask(ids, valid, IMG, SEG)
    assert mask.shape == (1, 1, 12, 12) and mask.dtype == torch.bool
    assert torch.equal(mask[0, 0], _parse(EXAMPLE_MATRIX))


def test_rows_without_seg_stay_causal_and_padding_is_per_row():
    ids = torch.tensor(
        [EXAMPLE_IDS, [10, 3, IMG, IMG, IMG, 4, 11, 12, 13, 2, PAD, PAD]])
    valid = torch.tensor([[1] * 11 + [0], [1] * 10 + [0, 0]])
    mask = dual_perception_mask(ids, valid, IMG, SEG)
    assert torch.equal(mask[0, 0], _parse(EXAMPLE_MATRIX))
    expected = _causal(12) & valid[1].bool()[None]
    expected |= torch.eye(12, dtype=torch.bool)
    assert torch.equal(mask[1, 0], expected)


def test_left_padding_and_several_segs():
    # Two [SEG]s: every image token sees both, even the later one.
    body = [3, IMG, IMG, 4, 11, SEG, 12, SEG, 2]
    ids = torch.tensor([[PAD, PAD] + body])
    valid = torch.tensor([[0, 0] + [1] * len(body)])
    mask = dual_perception_mask(ids, valid, IMG, SEG)[0, 0]
    alone = dual_perception_mask(torch.tensor([body]), None, IMG, SEG)[0, 0]
    assert torch.equal(mask[2:, 2:], alone)
    assert not mask[2:, :2].any()  # nobody real sees the padding
    img, segs = [3, 4], [7, 9]
    assert mask[img][:, img].all() and mask[img][:, segs].all()
    # Text and [SEG] stay causal: neither sees a later token.
    assert not mask[5, 6:].any() and not mask[7, 8:].any()
    # Every row is attendable somewhere (no empty softmax, no NaN).
    assert mask.any(dim=-1).all()


def test_no_seg_token_in_vocabulary_gives_causal():
    ids = torch.tensor([[3, IMG, IMG, 4, 11]])
    mask = dual_perception_mask(ids, None, IMG, -1)[0, 0]
    assert torch.equal(mask, _causal(5))


def test_additive_form():
    mask = torch.tensor([[True, False]])
    add = to_additive_mask(mask, torch.bfloat16)
    assert add.dtype == torch.bfloat16
    assert add[0, 0] == 0 and add[0, 1] == torch.finfo(torch.bfloat16).min


def _conversation(bb, seg_id, extra=()):
    n = bb.num_image_tokens
    return [1, 3] + [bb.image_token_id] * n + [
        4, 100, 101, *extra, 12, seg_id, 13, 2
    ]


@pytest.fixture
def backbone(tiny_backbone_cfg):
    torch.manual_seed(0)
    return MODELS.build(tiny_backbone_cfg).eval()


def _image_states(bb, ids, mask):
    pixels = torch.randn(1,
                         3,
                         bb.tile_size,
                         bb.tile_size,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return bb(pixels, ids, llm_attention_mask=mask).llm_image_states


def test_image_states_see_a_later_seg_only_with_the_mask(backbone):
    """Changing the [SEG] embedding changes image states iff dual mask."""
    bb = backbone
    ids = torch.tensor([_conversation(bb, bb.seg_token_id)])
    mask = dual_perception_mask(ids, None, bb.image_token_id, bb.seg_token_id)
    emb = bb.hf.get_input_embeddings().weight
    before = [_image_states(bb, ids, m) for m in (mask, None)]
    with torch.no_grad():
        emb[bb.seg_token_id] += 1.0
    after = [_image_states(bb, ids, m) for m in (mask, None)]
    assert not torch.allclose(before[0], after[0], atol=1e-4)
    torch.testing.assert_close(before[1], after[1])


def test_padded_batch_matches_single_and_eager_matches_sdpa(
        backbone, tiny_backbone_cfg):
    """Right padding changes nothing for real tokens and gives no NaN; the
    additive float mask under eager attention equals the bool one under
    SDPA."""
    bb = backbone
    long_ids = _conversation(bb, bb.seg_token_id, extra=(102, 103, 104))
    short_ids = _conversation(bb, bb.seg_token_id)
    ids = torch.zeros(2, len(long_ids), dtype=torch.long)
    ids[0] = torch.tensor(long_ids)
    ids[1, :len(short_ids)] = torch.tensor(short_ids)
    valid = (torch.arange(ids.shape[1])[None]
             < torch.tensor([[len(long_ids)], [len(short_ids)]])).long()
    mask = dual_perception_mask(ids, valid, bb.image_token_id, bb.seg_token_id)
    pixels = torch.randn(2, 3, bb.tile_size, bb.tile_size)
    with torch.no_grad():
        out = bb(pixels, ids, valid, llm_attention_mask=mask)
        single = bb(
            pixels[1:],
            ids[1:, :len(short_ids)],
            llm_attention_mask=mask[1:, :, :len(short_ids), :len(short_ids)])
    assert torch.isfinite(out.last_hidden_state).all()
    torch.testing.assert_close(out.last_hidden_state[1, :len(short_ids)],
                               single.last_hidden_state[0],
                               atol=1e-5,
                               rtol=1e-4)

    torch.manual_seed(0)
    eager = MODELS.build(dict(tiny_backbone_cfg,
                              attn_implementation='eager')).eval()
    eager.load_state_dict(bb.state_dict())
    with torch.no_grad():
        out_eager = eager(pixels,
                          ids,
                          valid,
                          llm_attention_mask=to_additive_mask(
                              mask, eager.dtype))
    torch.testing.assert_close(out_eager.last_hidden_state,
                               out.last_hidden_state,
                               atol=1e-5,
                               rtol=1e-4)


def _fake_backbone(impl):
    text_config = SimpleNamespace(_attn_implementation=impl)
    return SimpleNamespace(
        hf=SimpleNamespace(config=SimpleNamespace(text_config=text_config)),
        image_token_id=IMG, seg_token_id=SEG, dtype=torch.bfloat16)


def test_mask_for_follows_the_attention_implementation():
    ids = torch.tensor([[1, IMG, IMG, 9, SEG, 8], [1, IMG, IMG, SEG, 0, 0]])
    valid = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    inputs = dict(input_ids=ids, attention_mask=valid)
    expected = dual_perception_mask(ids, valid, IMG, SEG)
    assert torch.equal(
        dual_perception_mask_for(inputs, _fake_backbone('sdpa')), expected)
    eager = dual_perception_mask_for(inputs, _fake_backbone('eager'))
    assert eager.dtype == torch.bfloat16
    assert torch.equal(eager == 0, expected)
    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        dual_perception_mask_for(inputs, _fake_backbone('flash_attention_2'))
