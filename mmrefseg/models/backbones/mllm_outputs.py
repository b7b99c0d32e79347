# Copyright (c) mmrefseg contributors.
"""The contract between :class:`InternVLBackbone` and the heads."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch


@dataclass
class MLLMOutputs:
    """Everything a segmentation head may need from one backbone forward.

    Shapes use N = number of image tiles in the batch, B = number of
    conversations, L = padded sequence length, Q = number of ``[SEG]`` slots,
    S = number of answer slots (``[SEG]`` or ``[REJ]``).

    Attributes:
        vit_features: ViT layer index (as in HF ``hidden_states``) →
            [N, C_vit, h_v, w_v], CLS dropped.
        image_embeds: LLM *input* embeddings of the image tokens (projector
            output) [N, C_llm, h_l, w_l].
        llm_image_states: LLM last hidden states at the image positions
            (shifted by ``image_state_offset``) [N, C_llm, h_l, w_l].
        seg_states: hidden state per ``[SEG]`` token (shifted by
            ``seg_state_offset``) [Q, C_llm], ordered by conversation then
            position.
        seg_to_sample: conversation index of each ``[SEG]`` [Q].
        seg_to_image: tile index (into N) of the global view of the
            conversation each ``[SEG]`` belongs to [Q].
        slot_positions: (conversation, position) of every ``[SEG]``/``[REJ]``
            answer slot [S, 2], in the same order as the expressions.
        slot_is_seg: whether slot s holds ``[SEG]`` [S].
        slot_rej_score: logit(``[REJ]``) − logit(``[SEG]``) predicted at the
            token before each slot [S]; > 0 means the model says "no target".
        tile_to_sample: conversation index of every tile [N].
        lm_loss: next-token cross entropy over the answer tokens, or None.
        last_hidden_state: [B, L, C_llm] LLM output (post final norm).
        vit_grid: (h_v, w_v); llm_grid: (h_l, w_l).
        uncompressed_embeds: the projector applied to every ViT token
            replicated to a 2x2 block [N, h_v, w_v, C_llm] (SELF1E's
            uncompressed branch), when a head declares
            ``needs_uncompressed_vision``; else None.
    """

    vit_features: Dict[int, torch.Tensor]
    image_embeds: torch.Tensor
    llm_image_states: torch.Tensor
    seg_states: torch.Tensor
    seg_to_sample: torch.Tensor
    seg_to_image: torch.Tensor
    slot_positions: torch.Tensor
    slot_is_seg: torch.Tensor
    slot_rej_score: Optional[torch.Tensor]
    tile_to_sample: torch.Tensor
    last_hidden_state: torch.Tensor
    vit_grid: Tuple[int, int]
    llm_grid: Tuple[int, int]
    lm_loss: Optional[torch.Tensor] = None
    uncompressed_embeds: Optional[torch.Tensor] = None
