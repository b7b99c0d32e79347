# Copyright (c) mmrefseg contributors.
"""One image with K referring expressions, their ground truth and
predictions."""
import torch
from mmseg.structures import SegDataSample
from torch import Tensor


def _list_property(name: str, doc: str) -> property:

    def getter(self) -> list:
        return getattr(self, f'_{name}')

    def setter(self, value) -> None:
        self.set_field(list(value), f'_{name}', dtype=list)

    def deleter(self) -> None:
        delattr(self, f'_{name}')

    return property(getter, setter, deleter, doc=doc)


def _tensor_property(name: str, doc: str) -> property:

    def getter(self) -> Tensor:
        return getattr(self, f'_{name}')

    def setter(self, value) -> None:
        self.set_field(torch.as_tensor(value), f'_{name}', dtype=Tensor)

    def deleter(self) -> None:
        delattr(self, f'_{name}')

    return property(getter, setter, deleter, doc=doc)


class RefSegDataSample(SegDataSample):
    """A ``SegDataSample`` with per-expression fields.

    K is the number of expressions of the sample, (H, W) the original image
    size. Every per-expression field follows the order of :attr:`texts`.
    Ground truth is optional (a user's image and phrases have none).

    Inputs and ground truth:

    - ``texts`` (list[str], K): the expressions.
    - ``gt_masks`` (uint8 [K, H, W], {0, 1}).
    - ``gt_bboxes`` (float32 [K, 4], xyxy; zeros for no target).
    - ``gt_no_target`` (bool [K]).

    Predictions (set by ``RefSegmentor.predict``):

    - ``pred_masks`` (bool [K, H, W]).
    - ``pred_probs`` (float32 [K, H, W]): foreground probabilities (0/1
      for masks decoded from text).
    - ``pred_no_target`` (bool [K]): the model's "refers to nothing".
    - ``generated_texts`` (list[str], K): the generated answer, for heads
      that predict from text (Text4Seg).
    - ``parse_status`` (list[str], K): ``'ok'`` or the decoder's most
      severe repair of that answer; ``parse_repairs`` (list[list[str]]).

    MMSeg's ``pred_sem_seg`` ([K, H, W] uint8) and ``seg_logits`` (the
    probabilities) are filled too, for MMSeg tools.
    """

    texts = _list_property('texts', 'The K expressions.')
    gt_masks = _tensor_property('gt_masks', 'uint8 [K, H, W] GT masks.')
    gt_bboxes = _tensor_property('gt_bboxes', 'float32 [K, 4] GT boxes.')
    gt_no_target = _tensor_property('gt_no_target', 'bool [K] GT flags.')
    pred_masks = _tensor_property('pred_masks', 'bool [K, H, W] masks.')
    pred_probs = _tensor_property('pred_probs',
                                  'float32 [K, H, W] probabilities.')
    pred_no_target = _tensor_property('pred_no_target',
                                      'bool [K] no-target decisions.')
    generated_texts = _list_property('generated_texts',
                                     'Generated answer per expression.')
    parse_status = _list_property('parse_status',
                                  'Parse status per generated answer.')
    parse_repairs = _list_property('parse_repairs',
                                   'Repairs per generated answer.')

    @property
    def num_expressions(self) -> int:
        """K, from :attr:`texts` (else from the GT masks)."""
        if 'texts' in self:
            return len(self.texts)
        if 'gt_masks' in self:
            return int(self.gt_masks.shape[0])
        return 0
