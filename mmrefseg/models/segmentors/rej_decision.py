# Copyright (c) mmrefseg contributors.
"""MLLMSeg's GRES decision for RefSegmentor: argmax before each slot, then
a second pass for the masks."""
import torch
from torch import Tensor

from ..backbones.mllm_outputs import MLLMOutputs

REJ_DECISIONS = ('seg_vs_rej', 'argmax_teacher_forced')


class RejDecisionMixin:
    """``test_cfg.rej_decision='argmax_teacher_forced'`` of
    :class:`RefSegmentor` (see its docstring).

    Expects ``self.backbone`` and ``self.extract_feat``.
    """

    def _argmax_rej(self, out: MLLMOutputs) -> Tensor:
        """[S] bool: the most likely next token before each slot is [REJ].

        The decision of MLLMSeg's GRES test: with the GT answer
        teacher-forced, slot k's decision sees the GT tokens of the slots
        before it (the protocol's label leakage, kept for parity).
        """
        rej_id = self.backbone.rej_token_id
        if rej_id < 0:
            raise ValueError("test_cfg.rej_decision='argmax_teacher_forced' "
                             'needs [REJ] in the backbone\'s '
                             'extra_special_tokens.')
        pos = out.slot_positions
        if len(pos) == 0:
            return torch.zeros(0, dtype=torch.bool, device=pos.device)
        before = out.last_hidden_state[pos[:, 0], (pos[:, 1] - 1).clamp(min=0)]
        return self.backbone.lm_logits(before).argmax(-1) == rej_id

    def _reeval(self, inputs: dict, out: MLLMOutputs) -> MLLMOutputs:
        """Forward again with every [REJ] turned into [SEG] (if any).

        Tokens are replaced in place, so the slots keep their positions and
        order and the first pass's decisions still line up with them.
        """
        ids = inputs['input_ids']
        is_rej = ids == self.backbone.rej_token_id
        if not bool(is_rej.any()):
            return out
        inputs = dict(inputs, labels=None,
                      input_ids=ids.masked_fill(is_rej,
                                                self.backbone.seg_token_id))
        return self.extract_feat(inputs)
