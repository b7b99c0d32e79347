# Copyright (c) mmrefseg contributors.
"""Analytic forward FLOPs of an InternVL and of K expressions on one image.

Counts what :func:`flop_counter` counts: 2 FLOPs per multiply-accumulate
of every matrix product (linear layers, the patch convolution, the two
attention products), nothing for norms, activations or the pixel shuffle.
Attention is counted over the whole key range, as the counter does for
SDPA; a causal kernel may skip up to half of it, which at the 8B widths is
about 1% of the LLM's cost at a few hundred tokens.

Used by ``benchmarks/multi_expression_speed.py`` for the bound that
encoding the image once puts on the speed-up (issue #19).
"""
from dataclasses import dataclass
from typing import Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args,
                   out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts SDPA's CPU flash kernel.

    PyTorch's counter knows the CUDA attention kernels only, so on a CPU
    every ``scaled_dot_product_attention`` would count 0 and the counted
    FLOPs would miss attention (10-40% of a decoder layer at 1k tokens).

    Returns:
        FlopCounterMode: Use as a context manager; ``display=False``.
    """
    mapping = {}
    cpu_flash = getattr(torch.ops.aten,
                        '_scaled_dot_product_flash_attention_for_cpu', None)
    if cpu_flash is not None:
        mapping[cpu_flash] = _cpu_sdpa_flop
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _get(cfg: Mapping, key: str, default=None):
    value = cfg.get(key, default)
    if value is None:
        raise KeyError(f'InternVL config has no {key!r}')
    return value


def vit_flops(vision_config: Mapping, tiles: int = 1) -> int:
    """FLOPs of the InternViT over ``tiles`` tiles.

    Args:
        vision_config (Mapping): ``hidden_size``, ``num_hidden_layers``,
            ``intermediate_size``, ``image_size``, ``patch_size``.
        tiles (int): Tiles encoded.

    Returns:
        int: Patch embedding plus every layer over (S/p)^2 patches + CLS.
    """
    d = _get(vision_config, 'hidden_size')
    m = _get(vision_config, 'intermediate_size')
    size = _get(vision_config, 'image_size')
    patch = _get(vision_config, 'patch_size')
    size = size[0] if isinstance(size, (list, tuple)) else size
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    patches = (size // patch)**2
    tokens = patches + 1
    embed = 2 * patches * 3 * patch * patch * d
    # q, k, v, o projections, the two attention products, fc1 + fc2.
    layer = 2 * tokens * 4 * d * d + 4 * tokens * tokens * d \
        + 2 * tokens * 2 * d * m
    return tiles * (embed + _get(vision_config, 'num_hidden_layers') * layer)


def image_tokens(vision_config: Mapping, downsample_ratio: float) -> int:
    """LLM tokens per tile after the pixel shuffle ((S/p * r)^2)."""
    size = _get(vision_config, 'image_size')
    patch = _get(vision_config, 'patch_size')
    size = size[0] if isinstance(size, (list, tuple)) else size
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return int(size // patch * downsample_ratio)**2


def projector_flops(vision_config: Mapping, text_config: Mapping,
                    downsample_ratio: float, tiles: int = 1) -> int:
    """FLOPs of the MLP projector (LN -> Linear -> GELU -> Linear).

    Args:
        vision_config (Mapping): The ViT config.
        text_config (Mapping): The LLM config (``hidden_size``).
        downsample_ratio (float): Pixel-shuffle ratio (0.5).
        tiles (int): Tiles projected.

    Returns:
        int: FLOPs over ``tiles * image_tokens`` tokens.
    """
    d_in = int(_get(vision_config, 'hidden_size') / downsample_ratio**2)
    h = _get(text_config, 'hidden_size')
    n = tiles * image_tokens(vision_config, downsample_ratio)
    return 2 * n * (d_in * h + h * h)


def llm_flops(text_config: Mapping, new_tokens: int, context_tokens: int = 0,
              logits_tokens: int = 0) -> int:
    """FLOPs of the decoder-only LLM for ``new_tokens`` tokens of one
    sequence.

    Args:
        text_config (Mapping): ``hidden_size``, ``intermediate_size``,
            ``num_hidden_layers``, ``num_attention_heads``,
            ``num_key_value_heads`` (default: as many as query heads),
            ``vocab_size``.
        new_tokens (int): Tokens run through the layers.
        context_tokens (int): Tokens before them, read from a KV cache.
        logits_tokens (int): Positions whose LM-head logits are computed.

    Returns:
        int: Projections (grouped-query K/V), attention over the
        ``context_tokens + new_tokens`` keys, the gated MLP and the LM head.
    """
    h = _get(text_config, 'hidden_size')
    f = _get(text_config, 'intermediate_size')
    heads = _get(text_config, 'num_attention_heads')
    kv_heads = text_config.get('num_key_value_heads') or heads
    kv = h // heads * kv_heads
    n, keys = new_tokens, context_tokens + new_tokens
    layer = 2 * n * (2 * h * h + 2 * h * kv + 3 * h * f) + 4 * n * keys * h
    head = 2 * logits_tokens * h * _get(text_config, 'vocab_size')
    return _get(text_config, 'num_hidden_layers') * layer + head


@dataclass
class ExpressionCost:
    """FLOPs per expression of K expressions of one image, both paths.

    Attributes:
        per_expression (float): Every expression encodes its image and
            runs its whole conversation.
        shared (float): The grouped path, divided by K.
    """
    per_expression: float
    shared: float

    @property
    def ratio(self) -> float:
        """The speed-up bound: per-expression over shared FLOPs."""
        return self.per_expression / self.shared


def multi_expression_flops(arch: Mapping, prefix_tokens: int,
                           suffix_tokens: int, num_expressions: int,
                           share: str = 'prefix', head_flops: float = 0.0,
                           generated_tokens: int = 0,
                           tiles: int = 1) -> ExpressionCost:
    """FLOPs per expression, per-expression protocol vs image encoded once.

    Args:
        arch (Mapping): ``InternVLConfig`` fields (``vision_config``,
            ``text_config``, ``downsample_ratio``).
        prefix_tokens (int): Tokens up to the last image token (system
            turn + image tokens): what every expression of an image shares.
        suffix_tokens (int): The rest of one conversation (question and,
            teacher-forced, the answer).
        num_expressions (int): K.
        share (str): 'prefix': the LLM prefill over the prefix runs once
            and its KV cache serves the K suffixes (the image cannot see
            the expression: image first, causal); 'vit': only the ViT and
            projector run once (the image tokens read the expression).
        head_flops (float): Per-expression cost of the mask head (and
            neck), paid K times in both paths.
        generated_tokens (int): Greedy tokens each expression generates
            (Text4Seg), one LM-head row each, from the KV cache.
        tiles (int): Tiles of the image.

    Returns:
        ExpressionCost: Both paths' FLOPs per expression.
    """
    if share not in ('prefix', 'vit'):
        raise ValueError(f"share must be 'prefix' or 'vit', got {share!r}")
    k = int(num_expressions)
    vision, text = arch['vision_config'], arch['text_config']
    ratio = arch.get('downsample_ratio', 0.5)
    image = vit_flops(vision, tiles) + projector_flops(vision, text, ratio,
                                                       tiles)
    total = prefix_tokens + suffix_tokens
    gen = sum(
        llm_flops(text, 1, total + i, logits_tokens=1)
        for i in range(max(generated_tokens - 1, 0)))
    gen += 2 * text['hidden_size'] * text['vocab_size'] * \
        (1 if generated_tokens else 0)
    whole = llm_flops(text, total)
    per_expression = image + whole + gen + head_flops
    if share == 'prefix':
        prefix = llm_flops(text, prefix_tokens)
        suffix = llm_flops(text, suffix_tokens, prefix_tokens)
        shared = (image + prefix) / k + suffix + gen + head_flops
    else:
        shared = image / k + whole + gen + head_flops
    return ExpressionCost(float(per_expression), float(shared))
