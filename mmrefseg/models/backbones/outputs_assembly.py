# Copyright (c) mmrefseg contributors.
"""LLM hidden states -> :class:`MLLMOutputs`, shared by every forward path.

``InternVLBackbone.forward`` (one LLM pass over whole conversations) and the
shared-prefix pass of :mod:`.shared_prefix` (prefix once per image, suffixes
per expression) both end with the hidden states of whole conversations;
reading the image states, the ``[SEG]`` queries and the answer slots from
them is this one function, so both paths give the heads the same outputs.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from mmrefseg.structures import MLLMOutputs

IGNORE_INDEX = -100


def assemble_outputs(backbone,
                     hidden: torch.Tensor,
                     input_ids: torch.Tensor,
                     vit_features: Dict[int, torch.Tensor],
                     image_embeds: torch.Tensor,
                     num_tiles: Sequence[int],
                     labels: Optional[torch.Tensor] = None,
                     uncompressed_vision: bool = False) -> MLLMOutputs:
    """Read the heads' inputs out of the LLM's last hidden states.

    Args:
        backbone (InternVLBackbone): gives the token ids, offsets and the
            LM head.
        hidden (Tensor): [B, L, C_llm] last hidden states (post final norm)
            of B conversations.
        input_ids (Tensor): [B, L] their token ids.
        vit_features (dict[int, Tensor]): layer -> [N, C_vit, h_v, w_v] of
            the N tiles of the conversations, in conversation order.
        image_embeds (Tensor): [N, h_l * w_l, C_llm] projector output.
        num_tiles (Sequence[int]): tiles per conversation (sum N).
        labels (Tensor, optional): [B, L] for the next-token loss.
        uncompressed_vision (bool): compute ``uncompressed_embeds``.

    Returns:
        MLLMOutputs: see :class:`MLLMOutputs`.
    """
    bsz = input_ids.shape[0]
    device = input_ids.device
    n_img, n_tok, c_llm = image_embeds.shape
    is_img = input_ids == backbone.image_token_id
    side_l = int(round(n_tok**0.5))
    img_pos = is_img.nonzero(as_tuple=False)  # [N*n_tok, 2] row-major
    shifted = (img_pos[:, 1] + backbone.image_state_offset).clamp(min=0)
    llm_img = hidden[img_pos[:, 0], shifted].reshape(n_img, n_tok, c_llm)

    def to_grid(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(n_img, c_llm, side_l, side_l)

    tiles = torch.as_tensor(list(num_tiles), device=device)
    tile_to_sample = torch.repeat_interleave(
        torch.arange(bsz, device=device), tiles)
    global_tile = torch.cumsum(tiles, 0) - 1
    is_seg = input_ids == backbone.seg_token_id
    is_slot = is_seg | (input_ids == backbone.rej_token_id)
    slot_pos = is_slot.nonzero(as_tuple=False)
    seg_pos = is_seg.nonzero(as_tuple=False)
    seg_states = hidden[seg_pos[:, 0],
                        (seg_pos[:, 1] + backbone.seg_state_offset).clamp(
                            min=0)]
    rej_score = None
    if backbone.rej_token_id >= 0 and len(slot_pos):
        before = hidden[slot_pos[:, 0], (slot_pos[:, 1] - 1).clamp(min=0)]
        logits = backbone.lm_logits(before)
        rej_score = (logits[:, backbone.rej_token_id] -
                     logits[:, backbone.seg_token_id]).float()
    loss = lm_loss(backbone, hidden, labels) if labels is not None else None
    return MLLMOutputs(
        vit_features=vit_features,
        image_embeds=to_grid(image_embeds),
        llm_image_states=to_grid(llm_img),
        seg_states=seg_states,
        seg_to_sample=seg_pos[:, 0],
        seg_to_image=global_tile[seg_pos[:, 0]],
        slot_positions=slot_pos,
        slot_is_seg=is_seg[slot_pos[:, 0], slot_pos[:, 1]],
        slot_rej_score=rej_score,
        tile_to_sample=tile_to_sample,
        last_hidden_state=hidden,
        vit_grid=tuple(next(iter(vit_features.values())).shape[-2:])
        if vit_features else (0, 0),
        llm_grid=(side_l, side_l),
        lm_loss=loss,
        uncompressed_embeds=uncompressed_embeds(backbone, vit_features)
        if uncompressed_vision else None)


def uncompressed_embeds(backbone,
                        vit_features: Dict[int, torch.Tensor]) -> torch.Tensor:
    """Self-replicated ViT tokens through the projector.

    Each pre-shuffle token v becomes [v, v, v, v], as if it were a 2x2
    block of identical patches, so the projector trained on 2x2-packed
    inputs maps it at the full ViT resolution (SELF1E's uncompressed
    branch).

    Args:
        backbone (InternVLBackbone): its projector and ViT layer.
        vit_features (dict[int, Tensor]): must hold the layer the projector
            reads, [N, C_vit, h_v, w_v].

    Returns:
        Tensor: [N, h_v, w_v, C_llm] in the projector's dtype.
    """
    layer = backbone.hf.config.vision_feature_layer
    if layer not in vit_features:
        raise KeyError(
            'The uncompressed branch needs the ViT layer the projector '
            f'reads ({layer}); add it to the backbone vit_layers (got '
            f'{sorted(vit_features)}).')
    factor = int(round(1 / backbone.downsample_ratio))**2
    vit = vit_features[layer]  # [N, C_vit, h_v, w_v]
    return backbone.project(vit.permute(0, 2, 3, 1).repeat(1, 1, 1, factor))


def lm_loss(backbone, hidden: torch.Tensor,
            labels: torch.Tensor) -> torch.Tensor:
    """Next-token CE, with logits only where a label exists.

    Args:
        backbone (InternVLBackbone): its LM head.
        hidden (Tensor): [B, L, C_llm].
        labels (Tensor): [B, L], -100 where no label.

    Returns:
        Tensor: scalar loss (0 connected to ``hidden`` without labels).
    """
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    if not keep.any():
        return hidden.sum() * 0.
    logits = backbone.lm_logits(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), target[keep])
