# Copyright (c) mmrefseg contributors.
"""Generation from left-padded prompts, under any LLM mask on the prompt.

A causal prompt goes straight to transformers' ``generate``.

transformers' ``generate`` builds a causal mask from a 2D padding mask and
refuses a 4D one. A head that trains the LLM with another mask on the
prompt (Text4Seg with ``bidirectional_image=True``: image tokens see each
other both ways) must read its prompt the same way at test time, otherwise
the image states it answers from are not the ones it learned. Only the
prompt needs the special mask: every generated token may see everything
before it, which the causal loop already allows. So the prompt minus its
last token is run once under the policy's mask into a KV cache, and
``generate`` continues from that cache with its own loop, stopping
criteria and sampling options.
"""
import inspect

import torch
from torch import Tensor


def _cache_name(module: torch.nn.Module) -> str:
    """The KV-cache keyword of a transformers forward: ``cache`` since
    5.x's rename, ``past_key_values`` before."""
    params = inspect.signature(module.forward).parameters
    return 'cache' if 'cache' in params else 'past_key_values'


def left_padded_positions(attention_mask: Tensor) -> Tensor:
    """Position ids of a left-padded batch, as ``generate`` derives them.

    Args:
        attention_mask (Tensor): [B, L] 1 = real token.

    Returns:
        Tensor: [B, L] long, 0 on padding, 0..n-1 on the n real tokens.
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 0)


@torch.no_grad()
def prefill_prompt(backbone, pixel_values: Tensor, input_ids: Tensor,
                   attention_mask: Tensor, policy: str):
    """Run all but the last prompt token under ``policy``'s LLM mask
    (arguments as :func:`generate_after_masked_prefill`).

    Returns:
        Cache: transformers KV cache of the first ``L - 1`` positions.

    Raises:
        ValueError: an unknown policy, or a prompt that ends on an image
            token (the cache would hide it from the other image tokens).
    """
    ids, mask = input_ids[:, :-1], attention_mask[:, :-1]
    llm_mask = backbone.llm_attention_mask(policy, ids, mask)
    if bool((input_ids[:, -1] == backbone.image_token_id).any()):
        raise ValueError('A prompt ends on an image token; the masked '
                         'prefill needs text after the image.')
    _, image_embeds = backbone.extract_vision(pixel_values)
    embeds = backbone.embed_conversations(ids, image_embeds)
    llm = backbone.hf.model.language_model
    name = _cache_name(llm)
    out = llm(inputs_embeds=embeds,
              attention_mask=mask if llm_mask is None else llm_mask,
              position_ids=left_padded_positions(mask),
              use_cache=True)
    return out[name] if name in out else out['past_key_values']


@torch.no_grad()
def generate_after_masked_prefill(backbone, pixel_values: Tensor,
                                  input_ids: Tensor, attention_mask: Tensor,
                                  policy: str, **gen_kwargs) -> Tensor:
    """``generate`` with the prompt read under ``policy``'s mask.

    Args:
        backbone (InternVLBackbone): The model.
        pixel_values (Tensor): [N, 3, S, S], the tiles of the batch.
        input_ids (Tensor): [B, L] left-padded prompts.
        attention_mask (Tensor): [B, L] 1 = real token.
        policy (str): An LLM attention policy of the backbone.
        **gen_kwargs: ``generate`` arguments.

    Returns:
        Tensor: [B, L + T], the prompts and the new tokens.
    """
    cache = prefill_prompt(backbone, pixel_values, input_ids, attention_mask,
                           policy)
    gen_kwargs[_cache_name(backbone.hf)] = cache
    # No pixel_values: the image tokens are all in the cache, and the one
    # prompt token left to read is text.
    return backbone.hf.generate(input_ids=input_ids,
                                attention_mask=attention_mask, **gen_kwargs)


@torch.no_grad()
def generate_new_tokens(backbone, pixel_values: Tensor, input_ids: Tensor,
                        attention_mask: Tensor, llm_attention: str = 'causal',
                        **gen_kwargs) -> Tensor:
    """Greedy (by default) or sampled generation with KV cache.

    Args:
        backbone (InternVLBackbone): The model.
        pixel_values (Tensor): [N, 3, S, S], the tiles of the batch.
        input_ids (Tensor): [B, L] left-padded prompts.
        attention_mask (Tensor): [B, L] 1 = real token.
        llm_attention (str): The policy the prompt is read under; a
            non-causal one goes through :func:`generate_after_masked_prefill`.
        **gen_kwargs: ``generate`` arguments.

    Returns:
        Tensor: [B, T], only the new tokens.
    """
    gen_kwargs.setdefault('do_sample', False)
    gen_kwargs.setdefault('pad_token_id', backbone.tokenizer.pad_token_id)
    if llm_attention == 'causal':
        out = backbone.hf.generate(
            input_ids=input_ids, attention_mask=attention_mask,
            pixel_values=pixel_values.to(backbone.dtype), **gen_kwargs)
    else:  # llm_attention_mask rejects an unknown policy
        out = generate_after_masked_prefill(backbone, pixel_values,
                                            input_ids, attention_mask,
                                            llm_attention, **gen_kwargs)
    return out[:, input_ids.shape[1]:]
