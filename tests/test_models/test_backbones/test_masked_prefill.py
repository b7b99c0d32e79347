# Copyright (c) mmrefseg contributors.
"""Generation with the prompt read under a non-causal LLM mask."""
import pytest
import torch

from mmrefseg.models.backbones.masked_prefill import (
    generate_after_masked_prefill,
    left_padded_positions,
)
from mmrefseg.models.utils.dual_perception_mask import (
    dual_perception_mask,
    image_bidirectional_mask,
)
from mmrefseg.registry import MODELS


def _left_padded_prompts(bb, seed=0):
    """Two question-first prompts of different lengths, left-padded:
    [im_start] text <img> ctx*N </img> text."""
    gen = torch.Generator().manual_seed(seed)
    n = bb.num_image_tokens
    prompts = []
    for extra in (3, 6):
        text = torch.randint(100, 900, (extra, ), generator=gen).tolist()
        prompts.append([1] + text + [3] + [bb.image_token_id] * n +
                       [4, 101, 102])
    length = max(len(p) for p in prompts)
    ids = torch.zeros(2, length, dtype=torch.long)
    mask = torch.zeros(2, length, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, length - len(p):] = torch.tensor(p)
        mask[i, length - len(p):] = 1
    size = bb.tile_size
    pixels = torch.randn(2, 3, size, size, generator=gen)
    return pixels, ids, mask


def _backbone(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def _generate(bb, pixels, ids, mask, policy, steps=6):
    return bb.generate(pixels, ids, mask, llm_attention=policy,
                       max_new_tokens=steps, min_new_tokens=steps,
                       eos_token_id=None)


def test_left_padded_positions():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert left_padded_positions(mask).tolist() == [[0, 0, 0, 1, 2],
                                                    [0, 1, 2, 3, 4]]


def test_image_bidirectional_mask_needs_no_seg():
    img = 7
    ids = torch.tensor([[1, img, img, img, 2, 9]])
    attn = torch.tensor([[1, 1, 1, 1, 1, 0]])
    mask = image_bidirectional_mask(ids, attn, img)[0, 0]
    # Image tokens see each other both ways ...
    assert mask[1, 3] and mask[3, 1] and mask[2, 3]
    # ... text stays causal, and padding stays hidden.
    assert not mask[0, 1] and mask[4, 1] and not mask[4, 5]
    # SELF1E's rule keeps the block causal without a [SEG].
    self1e = dual_perception_mask(ids, attn, img, seg_token_id=9)[0, 0]
    assert not self1e[1, 3]


def _prefilled_logits(bb, pixels, ids, mask, policy, steps=6):
    """Tokens [B, T] and per-step logits [T, B, V] of
    :func:`generate_after_masked_prefill`."""
    out = generate_after_masked_prefill(
        bb, pixels, ids, mask, policy, max_new_tokens=steps,
        min_new_tokens=steps, eos_token_id=None, do_sample=False,
        pad_token_id=bb.tokenizer.pad_token_id,
        return_dict_in_generate=True, output_logits=True)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.logits)


def test_causal_prefill_matches_plain_generate(tiny_backbone_cfg):
    """The cached continuation reproduces transformers' own loop, logits
    included, when the prefill mask is the causal one (positions and cache
    line up)."""
    bb = _backbone(tiny_backbone_cfg)
    pixels, ids, mask = _left_padded_prompts(bb)
    plain = bb.hf.generate(
        input_ids=ids, attention_mask=mask, pixel_values=pixels,
        max_new_tokens=6, min_new_tokens=6, eos_token_id=None,
        do_sample=False, pad_token_id=bb.tokenizer.pad_token_id,
        return_dict_in_generate=True, output_logits=True)
    tokens, logits = _prefilled_logits(bb, pixels, ids, mask, 'causal')
    assert torch.equal(tokens, plain.sequences[:, ids.shape[1]:])
    torch.testing.assert_close(logits, torch.stack(plain.logits),
                               atol=1e-5, rtol=1e-4)


def test_bidirectional_generation_matches_teacher_forced(tiny_backbone_cfg):
    """Each step's logits under 'image_bidirectional' equal a
    teacher-forced forward under the same policy, and differ from the
    causal one (the prefill really used the mask)."""
    bb = _backbone(tiny_backbone_cfg)
    pixels, ids, mask = _left_padded_prompts(bb)
    new, step_logits = _prefilled_logits(bb, pixels, ids, mask,
                                         'image_bidirectional')
    assert torch.equal(
        new, _generate(bb, pixels, ids, mask, 'image_bidirectional'))
    full_ids = torch.cat([ids, new], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(new)], dim=1)
    steps = new.shape[1]
    for b in range(2):
        # One conversation at a time, unpadded: the forward's positions are
        # 0..n-1 as in the left-padded generation.
        keep = full_mask[b].bool()
        row_ids, row_mask = full_ids[b, keep][None], full_mask[b, keep][None]
        start = int(mask[b].sum()) - 1  # predicts the first new token
        with torch.no_grad():
            logits = {
                policy: bb.lm_logits(
                    bb(pixels[b:b + 1], row_ids, row_mask,
                       llm_attention=policy).last_hidden_state)[0,
                                                                start:start +
                                                                steps]
                for policy in ('image_bidirectional', 'causal')
            }
        torch.testing.assert_close(step_logits[:, b],
                                   logits['image_bidirectional'],
                                   atol=1e-5, rtol=1e-4)
        assert not torch.allclose(step_logits[:, b], logits['causal'],
                                  atol=1e-3)


def test_prefill_rejects_prompt_ending_on_image(tiny_backbone_cfg):
    bb = _backbone(tiny_backbone_cfg)
    pixels, ids, mask = _left_padded_prompts(bb)
    with pytest.raises(ValueError, match='ends on an image token'):
        _generate(bb, pixels, ids[:, :-3], mask[:, :-3],
                  'image_bidirectional')


def test_generate_rejects_unknown_policy(tiny_backbone_cfg):
    bb = _backbone(tiny_backbone_cfg)
    pixels, ids, mask = _left_padded_prompts(bb)
    with pytest.raises(ValueError, match='llm_attention must be one of'):
        _generate(bb, pixels, ids, mask, 'bidirectional')
