# Copyright (c) mmrefseg contributors.
"""Several conversations about one image, with the image encoded once.

An evaluation sample grouped by image (``test_grouping='image'``) is K
conversations, one per expression, that differ only after the image. Two
ways to run them without redoing per expression what they share:

- :func:`shared_vision`: the ViT and projector run once per image and the
  tiles are handed to every conversation of that image (any attention).
- :func:`shared_prefix_forward`: when attention over the image cannot see
  the expression (causal LLM, image before the question), the hidden states
  and keys/values of the tokens the K conversations share (their longest
  common token prefix: system turn, user header, image tokens) do not
  depend on the expression. The LLM runs over that prefix once per image,
  and its KV cache, repeated to the K conversations, serves one batched
  pass over the K suffixes, with each suffix's RoPE positions continuing its
  own prefix. Under causal attention the result is the same function of the
  tokens as one pass over each whole conversation; only the floating-point
  summation order differs.

:func:`shared_prefix_generate` is the greedy generation of Text4Seg on the
same prefix cache: all conversations of all images of a batch decode as one
batch, each stopping on its own.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from transformers import DynamicCache

from mmrefseg.structures import MLLMOutputs
from .outputs_assembly import assemble_outputs, uncompressed_embeds

Vision = Tuple[Dict[int, Tensor], Tensor]
# Generation-config fields that change greedy decoding in transformers'
# ``generate`` (logits processors), at their no-op values; the shared loop
# implements none of them.
PLAIN_GREEDY = dict(repetition_penalty=(1.0, None),
                    no_repeat_ngram_size=(0, None),
                    encoder_no_repeat_ngram_size=(0, None),
                    bad_words_ids=(None, ), min_length=(0, None),
                    min_new_tokens=(0, None), forced_bos_token_id=(None, ),
                    forced_eos_token_id=(None, ), suppress_tokens=(None, ),
                    begin_suppress_tokens=(None, ), sequence_bias=(None, ),
                    exponential_decay_length_penalty=(None, ),
                    renormalize_logits=(False, None))


def is_plain_greedy(generation_config) -> bool:
    """Whether a model's generation config leaves greedy decoding as the
    argmax of the logits (what :func:`shared_prefix_generate` does)."""
    return all(getattr(generation_config, key, None) in ok
               for key, ok in PLAIN_GREEDY.items())


@dataclass
class ImageGroups:
    """How the conversations of a batch share its images.

    Attributes:
        conv_to_image (Tensor): [B] long, image (input sample) of each
            conversation.
        tiles_per_image (list[int]): tiles of each image; its tiles lie
            contiguously in ``pixel_values`` in image order.
        conv_tiles (Tensor): [sum of each conversation's tiles] long, the
            tile (into ``pixel_values``) of every tile slot of every
            conversation, conversation after conversation.
    """

    conv_to_image: Tensor
    tiles_per_image: List[int]
    conv_tiles: Tensor

    @classmethod
    def build(cls, conv_to_image: Tensor,
              num_tiles: Sequence[int]) -> 'ImageGroups':
        """From ``conv_to_image`` [B] and each conversation's tiles [B]."""
        conv_to_image = conv_to_image.long()
        num_images = int(conv_to_image.max()) + 1 if len(conv_to_image) \
            else 0
        tiles = [0] * num_images
        for img, n in zip(conv_to_image.tolist(), num_tiles):
            tiles[img] = int(n)
        starts = [sum(tiles[:i]) for i in range(num_images)]
        index = [t for img in conv_to_image.tolist()
                 for t in range(starts[img], starts[img] + tiles[img])]
        return cls(conv_to_image, tiles,
                   torch.as_tensor(index, dtype=torch.long,
                                   device=conv_to_image.device))

    @property
    def num_images(self) -> int:
        return len(self.tiles_per_image)


def shared_vision(backbone, pixel_values: Tensor,
                  groups: ImageGroups) -> Tuple[Vision, Vision]:
    """ViT + projector once per image, then each conversation's copy.

    Args:
        backbone (InternVLBackbone): the model.
        pixel_values (Tensor): [N, 3, S, S], every image's tiles once.
        groups (ImageGroups): the batch's sharing.

    Returns:
        tuple: ((vit_features, image_embeds) per tile of ``pixel_values``,
        the same indexed per conversation's tile slot).
    """
    vit_features, image_embeds = backbone.extract_vision(pixel_values)
    idx = groups.conv_tiles.to(image_embeds.device)
    per_conv = ({k: v.index_select(0, idx) for k, v in vit_features.items()},
                image_embeds.index_select(0, idx))
    return (vit_features, image_embeds), per_conv


def right_padded_lengths(attention_mask: Tensor) -> Optional[Tensor]:
    """[B] lengths of a right-padded mask, or None if it is not one."""
    mask = attention_mask.bool()
    lengths = mask.sum(1)
    expect = torch.arange(mask.shape[1], device=mask.device)[None] < \
        lengths[:, None]
    return lengths if torch.equal(mask, expect) else None


def common_prefix_lengths(input_ids: Tensor, lengths: Tensor,
                          conv_to_image: Tensor, num_images: int) -> Tensor:
    """Longest common token prefix of each image's conversations.

    Capped one token short of the image's shortest conversation so that
    every conversation keeps a suffix.

    Args:
        input_ids (Tensor): [B, L] right-padded.
        lengths (Tensor): [B] real lengths.
        conv_to_image (Tensor): [B] image of each conversation.
        num_images (int): images in the batch.

    Returns:
        Tensor: [num_images] long prefix lengths (>= 0).
    """
    out = []
    for img in range(num_images):
        rows = torch.nonzero(conv_to_image == img).flatten()
        ids = input_ids[rows]
        cap = int(lengths[rows].min()) - 1
        same = (ids == ids[:1]).all(0)[:max(cap, 0)]
        differs = torch.nonzero(~same).flatten()
        out.append(int(differs[0]) if len(differs) else max(cap, 0))
    return torch.as_tensor(out, dtype=torch.long, device=input_ids.device)


def _pad_rows(rows: List[Tensor], value: int) -> Tensor:
    length = max(len(r) for r in rows)
    out = rows[0].new_full((len(rows), max(length, 1)), value)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def prefix_pass(backbone, input_ids: Tensor, prefix_len: Tensor,
                groups: ImageGroups, image_embeds: Tensor
                ) -> Tuple[Tensor, Tensor, DynamicCache]:
    """The LLM over each image's shared prefix, once per image.

    Args:
        backbone (InternVLBackbone): the model.
        input_ids (Tensor): [B, L] right-padded conversations.
        prefix_len (Tensor): [I] shared prefix length of each image.
        groups (ImageGroups): the batch's sharing.
        image_embeds (Tensor): [N, n_tok, C_llm] projector output per tile
            of ``pixel_values`` (image order).

    Returns:
        tuple: prefix hidden states [I, P, C_llm], the prefix padding mask
        [I, P] (long) and the KV cache (batch I) of the prefix pass.
    """
    first = [int(torch.nonzero(groups.conv_to_image == i).flatten()[0])
             for i in range(groups.num_images)]
    rows = [input_ids[j, :int(n)] for j, n in zip(first, prefix_len)]
    ids = _pad_rows(rows, backbone.processor.pad_token_id)
    mask = (torch.arange(ids.shape[1], device=ids.device)[None] <
            prefix_len[:, None]).long()
    embeds = backbone.embed_conversations(ids, image_embeds)
    cache = DynamicCache(config=backbone.hf.config.text_config)
    out = backbone.hf.model.language_model(
        inputs_embeds=embeds, attention_mask=mask, cache=cache,
        use_cache=True)
    return out.last_hidden_state, mask, out.cache


def suffix_pass(backbone, suffix_ids: Tensor, suffix_mask: Tensor,
                start: Tensor, prefix_mask: Tensor,
                cache: DynamicCache) -> Tensor:
    """One LLM pass over right-padded suffixes after their cached prefixes.

    Args:
        backbone (InternVLBackbone): the model.
        suffix_ids (Tensor): [B, S] suffix tokens (no image tokens).
        suffix_mask (Tensor): [B, S] 1 = real token.
        start (Tensor): [B] RoPE position of each suffix's first token (its
            prefix length).
        prefix_mask (Tensor): [B, P_cache] which cached positions are real.
        cache (DynamicCache): batch B, grown by this pass.

    Returns:
        Tensor: [B, S, C_llm] last hidden states.
    """
    positions = start[:, None] + torch.arange(
        suffix_ids.shape[1], device=suffix_ids.device)[None]
    mask = torch.cat([prefix_mask, suffix_mask], 1).long()
    embeds = backbone.hf.get_input_embeddings()(suffix_ids)
    return backbone.hf.model.language_model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
        cache=cache, use_cache=True).last_hidden_state


def prefix_covers_images(backbone, input_ids: Tensor, prefix_len: Tensor,
                         groups: ImageGroups) -> bool:
    """Whether every image's prefix holds all its image tokens."""
    first = [int(torch.nonzero(groups.conv_to_image == i).flatten()[0])
             for i in range(groups.num_images)]
    for i, j in enumerate(first):
        ids = input_ids[j]
        total = int((ids == backbone.image_token_id).sum())
        inside = int((ids[:int(prefix_len[i])] ==
                      backbone.image_token_id).sum())
        if inside != total:
            return False
    return True


def shared_prefix_forward(backbone, pixel_values: Tensor, input_ids: Tensor,
                          lengths: Tensor, prefix_len: Tensor,
                          groups: ImageGroups, num_tiles: Sequence[int],
                          uncompressed_vision: bool = False
                          ) -> MLLMOutputs:
    """Teacher-forced outputs of K conversations per image, prefix shared.

    Requires causal attention, right padding and prefixes that hold every
    image token (:func:`prefix_covers_images`).

    Args:
        backbone (InternVLBackbone): the model.
        pixel_values (Tensor): [N, 3, S, S], each image's tiles once.
        input_ids (Tensor): [B, L] right-padded conversations.
        lengths (Tensor): [B] their lengths.
        prefix_len (Tensor): [I] from :func:`common_prefix_lengths`.
        groups (ImageGroups): the batch's sharing.
        num_tiles (Sequence[int]): [B] tiles of each conversation.
        uncompressed_vision (bool): also the uncompressed branch.

    Returns:
        MLLMOutputs: as ``InternVLBackbone.forward`` gives for the B whole
        conversations (per-conversation copies of the image outputs).
    """
    backbone._check_context(input_ids)
    (vit, embeds), (vit_conv, embeds_conv) = shared_vision(
        backbone, pixel_values, groups)
    prefix_hidden, prefix_mask, cache = prefix_pass(
        backbone, input_ids, prefix_len, groups, embeds)
    c2i = groups.conv_to_image
    cache.batch_select_indices(c2i)
    start = prefix_len[c2i]
    pad = backbone.processor.pad_token_id
    suffixes = [input_ids[j, int(p):int(n)]
                for j, (p, n) in enumerate(zip(start, lengths))]
    suffix_ids = _pad_rows(suffixes, pad)
    suffix_len = lengths - start
    suffix_mask = (torch.arange(suffix_ids.shape[1], device=input_ids.device)
                   [None] < suffix_len[:, None])
    suffix_hidden = suffix_pass(backbone, suffix_ids, suffix_mask, start,
                                prefix_mask[c2i], cache)
    hidden = _stitch(prefix_hidden.index_select(0, c2i), suffix_hidden,
                     start, input_ids.shape[1])
    out = assemble_outputs(backbone, hidden, input_ids, vit_conv,
                           embeds_conv, num_tiles)
    if uncompressed_vision:
        out.uncompressed_embeds = uncompressed_embeds(
            backbone, vit).index_select(0, groups.conv_tiles)
    return out


def _stitch(prefix: Tensor, suffix: Tensor, start: Tensor,
            length: int) -> Tensor:
    """[B, L, C]: prefix states before ``start``, suffix states after."""
    t = torch.arange(length, device=prefix.device)[None]
    from_prefix = (t < start[:, None]).unsqueeze(-1)
    c = prefix.shape[-1]
    pre_idx = t.clamp(max=prefix.shape[1] - 1).expand(len(start), -1)
    suf_idx = (t - start[:, None]).clamp(min=0, max=suffix.shape[1] - 1)
    pre = prefix.gather(1, pre_idx.unsqueeze(-1).expand(-1, -1, c))
    suf = suffix.gather(1, suf_idx.unsqueeze(-1).expand(-1, -1, c))
    return torch.where(from_prefix, pre, suf)


@torch.no_grad()
def shared_prefix_generate(backbone, pixel_values: Tensor,
                           prompts: List[Tensor], groups: ImageGroups,
                           max_new_tokens: int,
                           stop_token_ids: Sequence[int],
                           newlines: Optional[Tensor] = None,
                           max_lines: int = 0) -> Tensor:
    """Greedy answers of every conversation, each image's prefix once.

    The same tokens as transformers' greedy ``generate`` on each prompt
    alone: a sequence stops after a stop id (kept) or once its new tokens
    hold ``max_lines`` line breaks; finished sequences are padded.

    Args:
        backbone (InternVLBackbone): the model.
        pixel_values (Tensor): [N, 3, S, S], each image's tiles once.
        prompts (list[Tensor]): B prompts (1-D, no padding), each holding
            its image's tokens.
        groups (ImageGroups): the batch's sharing.
        max_new_tokens (int): generation budget.
        stop_token_ids (Sequence[int]): end-of-turn ids.
        newlines (Tensor, optional): [V] line breaks per token.
        max_lines (int): stop after this many line breaks (0: never).

    Returns:
        Tensor: [B, T] new tokens, padding after each sequence's end.
    """
    pad = backbone.processor.pad_token_id
    device = prompts[0].device
    lengths = torch.as_tensor([len(p) for p in prompts], device=device)
    ids = _pad_rows(prompts, pad)
    prefix_len = common_prefix_lengths(ids, lengths, groups.conv_to_image,
                                       groups.num_images)
    (_, embeds), _ = shared_vision(backbone, pixel_values, groups)
    _, prefix_mask, cache = prefix_pass(backbone, ids, prefix_len, groups,
                                        embeds)
    c2i = groups.conv_to_image
    cache.batch_select_indices(c2i)
    start = prefix_len[c2i]
    suffixes = [p[int(s):] for p, s in zip(prompts, start)]
    suffix_ids = _pad_rows(suffixes, pad)
    suffix_len = lengths - start
    real = torch.arange(suffix_ids.shape[1], device=device)[None] < \
        suffix_len[:, None]
    hidden = suffix_pass(backbone, suffix_ids, real, start, prefix_mask[c2i],
                         cache)
    last = hidden[torch.arange(len(prompts), device=device), suffix_len - 1]
    mask = torch.cat([prefix_mask[c2i], real.long()], 1)
    position = lengths.clone()
    stops = torch.as_tensor(list(stop_token_ids), device=device)
    table = newlines.to(device) if newlines is not None else None
    lines = torch.zeros(len(prompts), dtype=torch.long, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new_tokens = []
    for step in range(max_new_tokens):
        token = backbone.lm_logits(last).argmax(-1)
        token = torch.where(done, torch.full_like(token, pad), token)
        new_tokens.append(token)
        finished = torch.isin(token, stops)
        if table is not None and max_lines > 0:
            lines = lines + table[token.clamp(max=len(table) - 1)]
            finished = finished | (lines >= max_lines)
        done = done | finished
        # T tokens need T - 1 decode passes (the prompt pass gives the
        # first): a pass after the budget's last token is thrown away.
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        embeds_t = backbone.hf.get_input_embeddings()(token[:, None])
        last = backbone.hf.model.language_model(
            inputs_embeds=embeds_t, attention_mask=mask,
            position_ids=position[:, None], cache=cache,
            use_cache=True).last_hidden_state[:, -1]
        position = position + 1
    if not new_tokens:
        return ids.new_zeros((len(prompts), 0))
    return torch.stack(new_tokens, 1)
