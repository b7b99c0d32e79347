# Copyright (c) mmrefseg contributors.
"""Regional ``torch.compile``: each repeated transformer block, in place.

A tiny or mid-sized InternVL spends much of a step outside its matrix
products: RMSNorm, rotary embeddings, SiLU gating, softmax and the dtype casts
of bf16 autocast run as separate small kernels. Inductor fuses them. Compiling
the blocks (the LLM's decoder layers, the ViT's encoder layers) rather than the
whole model keeps the rest eager: the processor's Python, the mask building,
the heads, ``generate`` and its cache logic are never traced, and all blocks
of a tower share one compiled graph, so compilation costs seconds, not
minutes. ``nn.Module.compile`` works in place: parameter names, and so
checkpoints, stay the same as without compilation. The blocks run compiled
in training mode only (:func:`use_compiled`).
"""
from typing import List, Tuple

import torch.nn as nn

#: The towers whose blocks can be compiled.
TOWERS = ('llm', 'vit')


def repeated_blocks(hf: nn.Module, towers: Tuple[str, ...] = TOWERS
                    ) -> List[nn.Module]:
    """The transformer blocks of ``towers`` in a transformers InternVL.

    Args:
        hf (nn.Module): an ``InternVLForConditionalGeneration``.
        towers (tuple[str]): any of ``'llm'`` (decoder layers of the
            language model) and ``'vit'`` (encoder layers of InternViT).

    Returns:
        list[nn.Module]: the blocks, LLM first.
    """
    unknown = set(towers) - set(TOWERS)
    if unknown:
        raise ValueError(f'compile_blocks towers must be among {TOWERS}, got '
                         f'{sorted(unknown)}')
    model = hf.model
    blocks: List[nn.Module] = []
    if 'llm' in towers:
        blocks += list(model.language_model.layers)
    if 'vit' in towers:
        blocks += list(model.vision_tower.encoder.layer)
    return blocks


def compile_repeated_blocks(hf: nn.Module, towers: Tuple[str, ...] = TOWERS,
                            **compile_kwargs) -> List[nn.Module]:
    """Compile every block of ``towers`` in place with ``torch.compile``.

    Sequence length and batch size change from batch to batch (conversations
    are padded to the longest one), so ``dynamic=True`` is the default: one
    graph serves every length instead of a recompilation per new shape.

    Args:
        hf (nn.Module): an ``InternVLForConditionalGeneration``.
        towers (tuple[str]): see :func:`repeated_blocks`.
        **compile_kwargs: ``torch.compile`` options (``dynamic``,
            ``mode``, ``backend``, ``fullgraph``, ``options``).

    Returns:
        list[nn.Module]: the compiled blocks.
    """
    compile_kwargs.setdefault('dynamic', True)
    blocks = repeated_blocks(hf, tuple(towers))
    for block in blocks:
        block.compile(**compile_kwargs)
        # nn.Module.compile keeps the compiled call here; kept aside so
        # that use_compiled() can switch it off and on again.
        block._compiled_block_call = block._compiled_call_impl
    return blocks


def use_compiled(blocks: List[nn.Module], enabled: bool) -> None:
    """Run ``blocks`` through their compiled call or eagerly.

    Generation calls the decoder layers with a KV cache one new token at a
    time; each step's new cache length recompiled the graph until dynamo's
    recompile limit (8) sent it back to eager, and evaluating 600 val
    expressions of the tiny Text4Seg model took 99 s instead of 56. So the
    backbone runs its blocks compiled while training and eagerly otherwise.

    Args:
        blocks (list[nn.Module]): from :func:`compile_repeated_blocks`.
        enabled (bool): compiled (True) or eager (False).
    """
    for block in blocks:
        block._compiled_call_impl = (block._compiled_block_call
                                     if enabled else None)
