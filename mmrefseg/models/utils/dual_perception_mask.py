# Copyright (c) mmrefseg contributors.
"""SELF1E's dual-perception attention mask for a stock decoder-only LLM.

The rule of SELF1E's code, per conversation, with ``q`` the query
and ``k`` the key position:

* start from causal + padding: ``q`` may see ``k`` iff ``k <= q`` and ``k``
  is a real token;
* image-to-image: when the conversation holds at least one ``[SEG]``, every
  ``<IMG_CONTEXT>`` token sees every other one (all tiles, both directions);
* image-to-``[SEG]``: every ``<IMG_CONTEXT>`` token sees every ``[SEG]`` token
  of its conversation, including later ones;
* the diagonal is always open, so padding rows never have an empty softmax
  (no NaN).

Everything else (``<img>``, ``</img>``, the text, ``[SEG]`` itself and what
follows it) stays causal.

:func:`image_bidirectional_mask` keeps only the image-to-image rule and opens
it in every conversation: the mask for an answer head (Text4Seg) that has no
``[SEG]`` but starts from a model trained under the dual-perception mask, so
that its image states are computed the way they were learned.
"""
from typing import Optional

import torch
from torch import Tensor


def dual_perception_mask(input_ids: Tensor,
                         attention_mask: Optional[Tensor],
                         image_token_id: int,
                         seg_token_id: int,
                         image_block_needs_seg: bool = True) -> Tensor:
    """Build the boolean [B, 1, L, L] mask (True = may attend).

    Works for left and right padding alike: padding is read from
    ``attention_mask``, never from a pad id (the original used
    ``input_ids != 0``, which also hid every "!" of Qwen tokenizers).

    Args:
        input_ids (Tensor): Token ids, shape (B, L).
        attention_mask (Tensor, optional): 1/True for real tokens, shape
            (B, L). None means no padding.
        image_token_id (int): Id of ``<IMG_CONTEXT>``.
        seg_token_id (int): Id of ``[SEG]``; a negative id (no ``[SEG]`` in
            the vocabulary) yields the plain causal + padding mask unless
            ``image_block_needs_seg`` is False.
        image_block_needs_seg (bool): Open the image-to-image block only in
            conversations that hold a ``[SEG]`` (SELF1E's rule). False opens
            it in every conversation. Defaults to True.

    Returns:
        Tensor: Bool mask of shape (B, 1, L, L), indexed ``[b, 0, q, k]``.
    """
    bsz, length = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        valid = torch.ones_like(input_ids, dtype=torch.bool)
    else:
        valid = attention_mask.to(device=device, dtype=torch.bool)
    is_img = (input_ids == image_token_id) & valid
    is_seg = (input_ids == seg_token_id) & valid if seg_token_id >= 0 \
        else torch.zeros_like(valid)
    # A conversation without [SEG] (e.g. VQA rows) keeps a causal image
    # block, as the original does.
    has_seg = is_seg.any(dim=1) if image_block_needs_seg \
        else torch.ones_like(valid[:, 0])

    pos = torch.arange(length, device=device)
    causal = pos[None, :] <= pos[:, None]  # [q, k]
    allowed = causal[None] & valid[:, None, :]
    img_q = is_img[:, :, None]
    allowed |= img_q & is_img[:, None, :] & has_seg[:, None, None]
    allowed |= img_q & is_seg[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=device)[None]
    return allowed[:, None]


def image_bidirectional_mask(input_ids: Tensor,
                             attention_mask: Optional[Tensor],
                             image_token_id: int) -> Tensor:
    """Causal + padding, with every image token of a conversation seeing
    every other one (all tiles, both directions).

    Args:
        input_ids (Tensor): Token ids, shape (B, L).
        attention_mask (Tensor, optional): 1/True for real tokens, shape
            (B, L). None means no padding.
        image_token_id (int): Id of ``<IMG_CONTEXT>``.

    Returns:
        Tensor: Bool mask of shape (B, 1, L, L), indexed ``[b, 0, q, k]``.
    """
    return dual_perception_mask(input_ids, attention_mask, image_token_id,
                                seg_token_id=-1, image_block_needs_seg=False)


def to_additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask → additive float mask (0 = attend, dtype min = blocked).

    Eager attention adds the mask to the scores, so it needs this form; SDPA
    and FlexAttention take the boolean mask directly. The finite minimum
    (not -inf) keeps a fully blocked row finite, though the open diagonal
    already prevents that.

    Args:
        mask (Tensor): Bool mask, any shape.
        dtype (torch.dtype): Floating dtype of the attention scores.

    Returns:
        Tensor: Same shape as ``mask``, in ``dtype``.
    """
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask, torch.finfo(dtype).min)


def dual_perception_mask_for(inputs: dict, backbone,
                             policy: str = 'dual_perception') -> Tensor:
    """The dual-perception (or image-bidirectional) mask of a batch, in the
    form the backbone's LLM attention implementation takes.

    Args:
        inputs (dict): Batch from ``RefSegDataPreProcessor`` with
            ``input_ids`` (B, L) and optionally ``attention_mask`` (B, L).
        backbone: The ``InternVLBackbone`` (its ``image_token_id``,
            ``seg_token_id``, ``dtype`` and HF config are read).
        policy (str): 'dual_perception' (:func:`dual_perception_mask`) or
            'image_bidirectional' (:func:`image_bidirectional_mask`).

    Returns:
        Tensor: (B, 1, L, L) bool mask for SDPA and FlexAttention, additive
        float mask in the backbone's dtype for eager attention.

    Raises:
        ValueError: flash-attention cannot take an arbitrary 4D mask.
    """
    impl = backbone.hf.config.text_config._attn_implementation
    if impl and 'flash' in impl:
        raise ValueError(
            f'The {policy} mask cannot be expressed with {impl}; '
            "build the backbone with attn_implementation='sdpa'.")
    if policy == 'image_bidirectional':
        mask = image_bidirectional_mask(inputs['input_ids'],
                                        inputs.get('attention_mask'),
                                        backbone.image_token_id)
    else:
        mask = dual_perception_mask(inputs['input_ids'],
                                    inputs.get('attention_mask'),
                                    backbone.image_token_id,
                                    backbone.seg_token_id)
    return to_additive_mask(mask, backbone.dtype) if impl == 'eager' \
        else mask
