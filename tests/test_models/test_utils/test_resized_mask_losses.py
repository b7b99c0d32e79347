# Copyright (c) mmrefseg contributors.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrefseg.models.utils import mask_loss_key, resized_mask_losses


class MeanBCE(nn.Module):
    loss_name = 'loss_bce'

    def forward(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits, target)


class SumOfProbsLoss(nn.Module):
    """Mean over masks of the summed probability: sensitive to size."""

    def forward(self, logits, target):
        return logits.sigmoid().flatten(1).sum(1).mean()


def test_keys():
    assert mask_loss_key(MeanBCE()) == 'loss_bce'
    assert mask_loss_key(SumOfProbsLoss()) == 'loss_sum_of_probs'


def test_grouped_losses_equal_the_mean_of_per_mask_losses():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 4, 4)
    gts = [(torch.rand(6, 8) > 0.5).float(), (torch.rand(5, 3) > 0.5).float(),
           (torch.rand(6, 8) > 0.5).float()]
    losses = [MeanBCE(), SumOfProbsLoss(), MeanBCE()]
    got = resized_mask_losses(losses, logits, gts)
    assert set(got) == {'loss_bce', 'loss_sum_of_probs'}
    per_mask = {'loss_bce': 0., 'loss_sum_of_probs': 0.}
    for q, gt in enumerate(gts):
        up = F.interpolate(logits[q:q + 1], size=gt.shape, mode='bilinear',
                           align_corners=False)
        per_mask['loss_bce'] += 2 * F.binary_cross_entropy_with_logits(
            up, gt[None, None])
        per_mask['loss_sum_of_probs'] += up.sigmoid().sum()
    for key, value in per_mask.items():
        torch.testing.assert_close(got[key], value / 3)


def test_empty_and_mismatched_inputs():
    logits = torch.randn(0, 1, 4, 4, requires_grad=True)
    got = resized_mask_losses([MeanBCE()], logits, [])
    assert float(got['loss_bce']) == 0.0
    got['loss_bce'].backward()  # still in the graph
    with pytest.raises(ValueError, match='2 predicted masks but 1 GT'):
        resized_mask_losses([MeanBCE()], torch.randn(2, 1, 4, 4),
                            [torch.zeros(4, 4)])
