# Copyright (c) mmrefseg contributors.
"""Which parts of an ``InternVLBackbone`` train: freezing, LoRA, new rows."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..utils.new_token_rows import NewTokenEmbedding, NewTokenLMHead

# LoRA targets per text-model family (HF-native module names).
LLM_LORA_TARGETS = {
    'qwen2': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
              'down_proj'],
    'qwen3': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
              'down_proj'],
    'llama': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
              'down_proj'],
}
VIT_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'projection_layer', 'fc1',
                    'fc2']


def configure_trainable_parts(backbone, new_ids: Sequence[int],
                              freeze_vit: bool, freeze_projector: bool,
                              freeze_llm: bool, train_new_token_rows: bool,
                              llm_lora: Optional[dict],
                              vit_lora: Optional[dict]) -> None:
    """Freeze parts, inject LoRA and make the added token rows trainable.

    What trains ends in float32 (master weights) whatever the model's dtype.

    Args:
        backbone (InternVLBackbone): its ``hf`` model is changed in place.
        new_ids (Sequence[int]): ids of the added special tokens.
        freeze_vit / freeze_projector / freeze_llm (bool): freeze those.
        train_new_token_rows (bool): with a frozen LLM, keep the embedding
            and lm_head rows of ``new_ids`` trainable.
        llm_lora / vit_lora (dict, optional): peft ``LoraConfig`` fields.
    """
    hf = backbone.hf
    model = hf.model
    parts = ((model.vision_tower, freeze_vit),
             (model.multi_modal_projector, freeze_projector),
             (model.language_model, freeze_llm),
             (hf.lm_head, freeze_llm))
    for module, frozen in parts:
        module.requires_grad_(not frozen)
    if llm_lora:
        inject_lora(model.language_model, llm_lora,
                    LLM_LORA_TARGETS.get(backbone.text_model_type))
    if vit_lora:
        inject_lora(model.vision_tower, vit_lora, VIT_LORA_TARGETS)
    if freeze_llm and train_new_token_rows and new_ids:
        # The head is reached as ``hf.lm_head`` whatever the LLM family,
        # never by a family's own name (the released MLLMSeg GRES code froze
        # Qwen2's head by naming InternLM2's ``output``).
        emb = hf.get_input_embeddings()
        tied = hf.get_output_embeddings().weight is emb.weight
        new_emb = NewTokenEmbedding(emb, list(new_ids))
        hf.set_input_embeddings(new_emb)
        head = NewTokenLMHead(hf.lm_head, list(new_ids))
        if tied:
            # One set of rows serves both uses, as the tie says.
            head.new_rows = new_emb.new_rows
        hf.lm_head = head
    # Trainable parameters (LoRA, new token rows, unfrozen parts) keep
    # float32 master weights when the frozen model is stored in bf16;
    # autocast handles the mixed matmuls.
    for param in backbone.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def inject_lora(module: nn.Module, lora_cfg: dict,
                default_targets: Optional[List[str]]) -> None:
    """Add peft LoRA adapters to ``module`` in place.

    Args:
        module (nn.Module): the ViT or the LLM.
        lora_cfg (dict): ``LoraConfig`` fields; ``target_modules`` defaults
            to ``default_targets``.
        default_targets (list[str], optional): the family's module names.
    """
    from peft import LoraConfig, inject_adapter_in_model
    lora_cfg = dict(lora_cfg)
    lora_cfg.setdefault('target_modules', default_targets)
    if lora_cfg['target_modules'] is None:
        raise ValueError('No default LoRA target modules for this model '
                         'family; set target_modules explicitly.')
    inject_adapter_in_model(LoraConfig(**lora_cfg), module)
