# Copyright (c) mmrefseg contributors.
"""Building the transformers InternVL inside ``InternVLBackbone``.

Loading a checkpoint or building random weights, growing the token rows the
tokenizer added, and the optional sine-cosine start of a random ViT's
position table: what the backbone does once, before training is configured
(:mod:`.trainable_parts`) or blocks are compiled (:mod:`.compiled_blocks`).
"""
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log
from transformers import InternVLConfig, InternVLForConditionalGeneration

from mmrefseg.utils.tokenizer import token_id
from ..utils.position_table import sincos_2d_position_table


def build_hf_model(pretrained: Optional[str], config: Optional[dict],
                   dtype: torch.dtype, attn_implementation: str,
                   bnb_config=None) -> InternVLForConditionalGeneration:
    """Load ``pretrained`` or build random weights from ``config``.

    Args:
        pretrained (str, optional): a local HF checkpoint directory.
        config (dict, optional): ``InternVLConfig`` fields, used when
            ``pretrained`` is None.
        dtype (torch.dtype): parameter dtype.
        attn_implementation (str): 'sdpa', 'eager' or 'flash_attention_2'.
        bnb_config: a bitsandbytes config; transformers quantizes each
            tensor as it loads.

    Returns:
        InternVLForConditionalGeneration: the model.
    """
    if pretrained is not None:
        if not osp.isfile(osp.join(pretrained, 'config.json')):
            raise FileNotFoundError(
                f'No HF checkpoint at {pretrained!r}: expected a directory '
                'with config.json and model*.safetensors (a native InternVL '
                '"-hf" checkpoint, or the output of '
                'tools/model_converters/internvl_chat_to_hf.py).')
        print_log(f'Loading InternVL weights from {pretrained}',
                  logger='current')
        return InternVLForConditionalGeneration.from_pretrained(
            pretrained, dtype=dtype, attn_implementation=attn_implementation,
            quantization_config=bnb_config)
    hf_config = InternVLConfig(**config)
    hf_config._attn_implementation = attn_implementation
    hf_config.text_config._attn_implementation = attn_implementation
    hf_config.vision_config._attn_implementation = attn_implementation
    model = InternVLForConditionalGeneration(hf_config)
    return model.to(dtype)


def add_token_rows(hf: InternVLForConditionalGeneration, tokenizer,
                   tokens: Sequence[str], init_new_token_rows: bool
                   ) -> List[int]:
    """Grow the embeddings to fit the tokenizer; new rows start at the mean.

    Checkpoints often have padded vocabularies, so the ids of ``tokens`` may
    already have (untrained) rows; those are re-initialised too, unless
    ``init_new_token_rows`` is False (rows the checkpoint trained). Rows the
    resize adds are initialised either way.

    Args:
        hf (InternVLForConditionalGeneration): changed in place.
        tokenizer: the tokenizer that holds ``tokens``.
        tokens (Sequence[str]): the added special tokens.
        init_new_token_rows (bool): re-initialise rows that already exist.

    Returns:
        list[int]: the ids of ``tokens``.
    """
    new_ids = [token_id(tokenizer, t) for t in tokens]
    old_rows = hf.get_input_embeddings().weight.shape[0]
    need = max([len(tokenizer)] + [i + 1 for i in new_ids])
    if need > old_rows:
        hf.resize_token_embeddings(need, mean_resizing=False)
    reinit = new_ids if init_new_token_rows else \
        [i for i in new_ids if i >= old_rows]
    if not reinit:
        return new_ids
    # Rows the checkpoint trained: below both sizes, minus the new ids.
    limit = min(old_rows, len(tokenizer))
    trained = torch.ones(limit, dtype=torch.bool)
    trained[[i for i in new_ids if i < limit]] = False
    with torch.no_grad():
        for layer in (hf.get_input_embeddings(), hf.get_output_embeddings()):
            w = layer.weight
            if w.device.type == 'meta':
                continue
            rows = w[:limit][trained.to(w.device)]
            mean = rows.float().mean(0) if len(rows) else \
                w.new_zeros(w.shape[1], dtype=torch.float32)
            w[reinit] = mean.to(w.dtype)
    return new_ids


def init_vit_pos_embed_sincos(hf: InternVLForConditionalGeneration) -> None:
    """Set the ViT's absolute position table to MAE's 2D sine-cosine table.

    transformers starts it at zero; a model trained from scratch then does
    not know where a patch is, unlike a pretrained InternViT whose learned
    table encodes the 2D grid. The CLS slot has no grid position (zero).

    Args:
        hf (InternVLForConditionalGeneration): changed in place.
    """
    pos = hf.model.vision_tower.embeddings.position_embeddings
    if pos is None or pos.device.type == 'meta':
        return
    vcfg = hf.config.vision_config
    side = int(vcfg.image_size[0]) // int(vcfg.patch_size[0])
    table = sincos_2d_position_table(side, side, pos.shape[-1])
    with torch.no_grad():
        pos[0, 0].zero_()
        pos[0, 1:] = table.to(pos.dtype)
