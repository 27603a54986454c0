"""The segmentation loss (segmentation.losses): weighted cross-entropy, focal and dice terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from landcover.models.segmentation.losses import SegmentationLoss


def test_loss_matches_weighted_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = 255
    weights = torch.tensor([1.0, 2.0, 0.5])
    loss, per_sample = SegmentationLoss(weights, ce_weight=1, dice_weight=0, focal_gamma=0.0)(
        logits, target
    )
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=255)
    torch.testing.assert_close(loss, expected)
    assert per_sample.shape == (2,)


def test_focal_term_lowers_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    ce, _ = SegmentationLoss(None, 1, 0, 0.0)(logits, target)
    focal, _ = SegmentationLoss(None, 1, 0, 2.0)(logits, target)
    assert focal < ce


def test_dice_term_adds_to_the_loss_and_backpropagates():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    ce, _ = SegmentationLoss(None, 1, 0, 0.0)(logits, target)
    mixed, _ = SegmentationLoss(None, 1, 0.5, 0.0)(logits, target)
    mixed.backward()
    assert mixed > ce and logits.grad is not None


def test_loss_of_fully_ignored_batch_is_zero():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    loss, per_sample = SegmentationLoss([1.0, 1.0, 1.0], 1.0, 0.5, 0.0)(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(per_sample[0]) == 0.0
