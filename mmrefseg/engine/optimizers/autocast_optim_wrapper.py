# Copyright (c) mmrefseg contributors.
"""bfloat16 autocast training on any device, the CPU included."""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmrefseg.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An :class:`OptimWrapper` whose forward runs under ``torch.autocast``.

    MMEngine's ``AmpOptimWrapper`` asserts a GPU (it is built around a CUDA
    ``GradScaler``), so it cannot train on CPU. bfloat16 keeps float32's
    exponent range and needs no loss scaling, so autocast alone is enough on
    any device. On CPUs with AMX or AVX512-BF16 the matmuls then run several
    times faster than in float32 (2 cores here: ~2,100 bf16 against ~350
    float32 GFLOP/s), which is what the tiny CPU configs use it for.
    Parameters, gradients and optimizer state stay float32.

    Args:
        dtype (str | torch.dtype): autocast dtype. Only bfloat16: float16
            needs loss scaling (use ``AmpOptimWrapper`` on a GPU for that).
            Defaults to ``'bfloat16'``.
        **kwargs: passed to :class:`OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Example:
        >>> optim_wrapper = dict(type='AutocastOptimWrapper',
        ...                      optimizer=dict(type='AdamW', lr=5e-4))
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype is not torch.bfloat16:
            raise ValueError(
                'AutocastOptimWrapper only autocasts to bfloat16 (float16 '
                f'needs loss scaling: use AmpOptimWrapper), got {dtype!r}')
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of :class:`OptimWrapper` plus
        autocast on the device the model's parameters live on."""
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(
                device_type=device_type, dtype=self.cast_dtype):
            yield
