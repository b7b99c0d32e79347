# Copyright (c) mmrefseg contributors.
"""Gradient clipping by the global norm when gradients are sharded (FSDP)."""
from typing import List

import torch
import torch.distributed as torch_dist
from mmengine.optim import OptimWrapper

from mmrefseg.registry import OPTIM_WRAPPERS


def sharded_clip_grad_norm_(params: List[torch.Tensor],
                            max_norm: float,
                            norm_type: float = 2.0) -> torch.Tensor:
    """``clip_grad_norm_`` over gradients split across processes.

    Under FSDP (``use_orig_params=True``) each process holds a disjoint
    shard of every gradient, so ``torch.nn.utils.clip_grad_norm_`` would
    clip each shard by its own norm: a different factor on every process.
    Here the p-th powers of the local norms are summed over processes first.

    Args:
        params (list[Tensor]): Parameters whose (local) gradients to clip.
        max_norm (float): Maximum global norm.
        norm_type (float): p of the p-norm (finite). Defaults to 2.

    Returns:
        Tensor: The global norm before clipping (float32 scalar).
    """
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else torch.device('cpu')
    local = torch.zeros((), dtype=torch.float32, device=device)
    for g in grads:
        local += g.detach().float().norm(norm_type)**norm_type
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.all_reduce(local)
    total = local**(1.0 / norm_type)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(coef.to(g.dtype))
    return total


@OPTIM_WRAPPERS.register_module()
class ShardedGradOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``clip_grad`` (type 'norm') uses the global
    norm of FSDP-sharded gradients.

    Args:
        **kwargs: As :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if getattr(self, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            self.clip_func = sharded_clip_grad_norm_
