"""Segmentation losses: class-weighted cross-entropy (or focal) plus Dice, ignoring 255."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from landcover.classes import IGNORE


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + dice_weight * Dice`` over the pixels whose label is not 255.

    CE is the class-weighted cross-entropy, averaged as ``torch.nn.CrossEntropyLoss``
    does (sum of weighted pixel losses over the sum of their weights). With
    ``focal_gamma > 0`` each pixel's term is multiplied by ``(1 - p_true) ** gamma``
    (focal loss, Lin et al. 2017), which reduces to CE at gamma 0. Dice is the soft
    multi-class Dice loss, averaged over the classes present in the batch's labels.

    ``forward`` also returns each sample's (weighted, focal) pixel loss, detached,
    which the hard-example sampler uses.

    Args:
        class_weights: per-class weights (``class_weights.json``), or None for equal.
        ce_weight: weight of the cross-entropy (or focal) term.
        dice_weight: weight of the Dice term.
        focal_gamma: focusing parameter; 0 is plain cross-entropy.
        ignore_index: label value that contributes nothing.

    """

    def __init__(
        self,
        class_weights: Sequence[float] | torch.Tensor | None,
        ce_weight: float,
        dice_weight: float,
        focal_gamma: float,
        ignore_index: int = IGNORE,
    ) -> None:
        """Set up the loss; see the class docstring for the arguments."""
        super().__init__()
        weights = None if class_weights is None else torch.as_tensor(class_weights).float()
        self.register_buffer("class_weights", weights)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.focal_gamma = float(focal_gamma)
        self.ignore_index = ignore_index

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the loss.

        Args:
            logits: ``(N, K, H, W)`` (any float dtype; computed in float32).
            target: ``(N, H, W)`` integer labels, ``ignore_index`` where unlabelled.

        Returns:
            The scalar loss and the per-sample pixel loss ``(N,)`` (detached; 0 for a
            sample without labelled pixels).

        """
        logits = logits.float()
        target = target.long()
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_p = F.log_softmax(logits, dim=1)
        log_pt = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
        pixel = -log_pt
        if self.focal_gamma > 0:
            pixel = pixel * (1 - log_pt.exp()).clamp_min(0) ** self.focal_gamma
        if self.class_weights is not None:
            w = self.class_weights[safe]
        else:
            w = torch.ones_like(pixel)
        w = w * valid
        num = (pixel * w).flatten(1).sum(1)
        den = w.flatten(1).sum(1)
        ce = num.sum() / den.sum().clamp_min(1e-12)
        per_sample = (num / den.clamp_min(1e-12)).detach()
        loss = self.ce_weight * ce
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * dice_loss(log_p.exp(), safe, valid)
        return loss, per_sample


def dice_loss(probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss averaged over classes present in ``target`` (where ``valid``).

    Args:
        probs: ``(N, K, H, W)`` class probabilities.
        target: ``(N, H, W)`` class indices (any value where not ``valid``).
        valid: ``(N, H, W)`` boolean mask of labelled pixels.

    """
    k = probs.shape[1]
    onehot = F.one_hot(target, k).permute(0, 3, 1, 2).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    probs, onehot = probs * mask, onehot * mask
    inter = (probs * onehot).sum((0, 2, 3))
    card = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    if not present.any():
        return probs.sum() * 0.0  # keeps the graph; no labelled pixel in the batch
    dice = (2 * inter + 1.0) / (card + 1.0)
    return 1.0 - dice[present].mean()
