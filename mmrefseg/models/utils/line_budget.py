# Copyright (c) mmrefseg contributors.
"""A generation stop after a number of line breaks (Text4Seg answers)."""
from torch import Tensor
from transformers import StoppingCriteria


class LineBudget(StoppingCriteria):
    """Stop a sequence once its new text holds ``max_lines`` line breaks.

    A well-formed Text4Seg answer has ``h + 1`` of them (the sentence
    before ``<seg>``, then one per row); past that only ``</seg>`` may
    follow, so a model that keeps writing rows is cut there instead of
    running to ``max_new_tokens``. Rows beyond ``h`` would be dropped by the
    decoder anyway.

    Args:
        newlines (Tensor): [V] line breaks in each token's text
            (``InternVLProcessor.newline_counts``).
        prompt_length (int): Width of the (left-padded) prompt.
        max_lines (int): Line breaks that end a sequence.
    """

    def __init__(self, newlines: Tensor, prompt_length: int,
                 max_lines: int) -> None:
        self.newlines = newlines
        self.prompt_length = prompt_length
        self.max_lines = max_lines

    def __call__(self, input_ids: Tensor, scores=None, **kwargs) -> Tensor:
        new = input_ids[:, self.prompt_length:]
        table = self.newlines.to(new.device)
        counts = table[new.clamp(max=len(table) - 1)].sum(dim=1)
        return counts >= self.max_lines
