# Copyright (c) mmrefseg contributors.
"""Train only the rows of newly added tokens in a frozen embedding / lm_head.

Adding ``[SEG]``/``[REJ]`` to an 8B LLM whose embeddings are frozen should
train two rows, not 2 x 760M parameters with their optimizer state (what the
original MLLMSeg code does for InternLM2). These modules keep the original
weight frozen under its original name (``weight``), so transformers' own
``get_input_embeddings()`` / ``generate`` keep working, and add a small
trainable ``new_rows`` parameter that replaces the rows of the new ids.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _row_lookup(num_rows: int, ids: Sequence[int]) -> torch.Tensor:
    lookup = torch.full((num_rows, ), -1, dtype=torch.long)
    lookup[torch.as_tensor(list(ids), dtype=torch.long)] = torch.arange(
        len(ids))
    return lookup


class NewTokenEmbedding(nn.Module):
    """An ``nn.Embedding`` whose rows ``new_ids`` live in a trainable tensor.

    Args:
        base (nn.Embedding): the frozen embedding (its weight is reused).
        new_ids (Sequence[int]): token ids whose rows are trainable.
    """

    def __init__(self, base: nn.Embedding, new_ids: Sequence[int]) -> None:
        super().__init__()
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.padding_idx = base.padding_idx
        self.num_embeddings, self.embedding_dim = base.weight.shape
        self.new_rows = nn.Parameter(
            base.weight.detach()[list(new_ids)].clone())
        self.register_buffer(
            'new_ids', torch.as_tensor(list(new_ids), dtype=torch.long),
            persistent=False)
        self.register_buffer(
            'row_lookup', _row_lookup(self.num_embeddings, new_ids),
            persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embed ``input_ids`` [*] → [*, C]."""
        out = F.embedding(input_ids, self.weight, self.padding_idx)
        row = self.row_lookup[input_ids]
        is_new = (row >= 0).unsqueeze(-1)
        new = self.new_rows.to(out.dtype)[row.clamp(min=0)]
        return torch.where(is_new, new, out)

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The full weight with the trained rows written back."""
        weight = self.weight.detach().clone()
        weight[self.new_ids] = self.new_rows.detach().to(weight.dtype)
        return weight


class NewTokenLMHead(nn.Module):
    """A bias-free ``nn.Linear`` output head with trainable rows ``new_ids``.

    Args:
        base (nn.Linear): the frozen output projection.
        new_ids (Sequence[int]): token ids whose output rows are trainable.
    """

    def __init__(self, base: nn.Linear, new_ids: Sequence[int]) -> None:
        super().__init__()
        if base.bias is not None:
            raise ValueError('NewTokenLMHead expects a bias-free lm_head.')
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.out_features, self.in_features = base.weight.shape
        self.new_rows = nn.Parameter(
            base.weight.detach()[list(new_ids)].clone())
        self.register_buffer(
            'new_ids', torch.as_tensor(list(new_ids), dtype=torch.long),
            persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [*, V] of ``hidden`` [*, C]."""
        logits = F.linear(hidden, self.weight)
        new = F.linear(hidden, self.new_rows.to(hidden.dtype))
        return logits.index_copy(-1, self.new_ids, new)

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The full weight with the trained rows written back."""
        weight = self.weight.detach().clone()
        weight[self.new_ids] = self.new_rows.detach().to(weight.dtype)
        return weight
