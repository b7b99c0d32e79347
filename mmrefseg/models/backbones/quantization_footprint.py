# Copyright (c) mmrefseg contributors.
"""Which weights are 4/8-bit, and the bytes they take (measured on a
quantized model, or estimated on a meta-device one)."""
from typing import Dict, List

import torch
import torch.nn as nn


def is_quantized_weight(param: torch.Tensor) -> bool:
    """Whether a parameter holds bitsandbytes 4-bit or int8 data."""
    return type(param).__name__ in ('Params4bit', 'Int8Params')


def quantized_linear_names(model: nn.Module) -> List[str]:
    """Names of the modules whose weight is quantized."""
    # The module owning the parameter (peft's LoRA wrapper only shows it).
    return [name for name, m in model.named_modules()
            if is_quantized_weight(m._parameters.get('weight'))]


def weight_bytes(model: nn.Module) -> Dict[str, int]:
    """Bytes held by parameters, split quantized / other.

    A 4-bit weight counts its packed data plus its quantization state
    (block scales, second-level scales and code book); an int8 weight its
    data plus its per-row scales.

    Args:
        model (nn.Module): any module.

    Returns:
        dict: ``quantized`` and ``other`` byte counts.
    """
    quant = other = 0
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            nbytes = param.numel() * param.element_size()
            if not is_quantized_weight(param):
                other += nbytes
                continue
            quant += nbytes
            state = getattr(param, 'quant_state', None)
            if state is not None:
                quant += _state_bytes(state)
            # Linear8bitLt moves the row scales to its state at first use.
            scb = getattr(param, 'SCB', None)
            if scb is None:
                scb = getattr(getattr(module, 'state', None), 'SCB', None)
            if scb is not None:
                quant += scb.numel() * scb.element_size()
    return dict(quantized=quant, other=other)


def _state_bytes(state) -> int:
    total = 0
    for key in ('absmax', 'code'):
        t = getattr(state, key, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    if getattr(state, 'nested', False):
        total += _state_bytes(state.state2) + 4  # + fp32 offset
    return total


def estimate_weight_bytes(model: nn.Module, bnb_config) -> Dict[str, int]:
    """Bytes of a model's parameters once quantized, without quantizing.

    Works on a model built on the meta device (the 8B configs): every
    ``nn.Linear`` that transformers would quantize is counted at the
    storage bitsandbytes gives it, everything else at its own dtype. For
    4 bits: half a byte per weight, one 8-bit block scale per 64 weights
    with double quantization (a float32 one without), and per layer the
    second-level scales (one float32 per 256 blocks), the 16-entry code
    book and the 256-entry second-level code book. For 8 bits: a byte per
    weight and one float32 scale per output row. It equals
    :func:`weight_bytes` of the quantized model (tests check it).

    Args:
        model (nn.Module): the HF model, on any device (meta included).
        bnb_config (BitsAndBytesConfig): from :func:`build_bnb_config`.

    Returns:
        dict: ``quantized`` and ``other`` byte counts.
    """
    from transformers.quantizers.quantizers_utils import should_convert_module
    skip = bnb_config.llm_int8_skip_modules
    quant = other = 0
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        # LoRA's own Linear layers (a model built with adapters) are
        # trainable float32, never quantized.
        if type(module) is nn.Linear and '.lora_' not in name and \
                should_convert_module(name, skip):
            n = module.weight.numel()
            if bnb_config.load_in_8bit:
                quant += n + 4 * module.out_features
            else:
                blocks = -(-n // 64)
                if bnb_config.bnb_4bit_use_double_quant:
                    scales = blocks + 4 * -(-blocks // 256) + 4 * 256 + 4
                else:
                    scales = 4 * blocks
                quant += -(-n // 2) + scales + 4 * 16
            own = [module.bias] if module.bias is not None else []
        other += sum(p.numel() * p.element_size() for p in own)
    return dict(quantized=quant, other=other)
