"""Test-time augmentation: a scorer that averages its model over the square's symmetries.

Land cover has no up or left, so a network's probabilities under a rotated or mirrored
window should agree; averaging them over the dihedral transforms cancels part of the
network's orientation-specific errors at the price of one forward pass per transform.
A per-pixel model (``per_pixel``) gives the same answer under every transform and is
left as it is.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from landcover.models import Scorer

TTA = Literal["none", "flips", "d4"]
"""``predict.tta``: no augmentation, the 4 flips (identity, left-right, up-down, both),
or all 8 transforms of the dihedral group D4."""

TRANSFORMS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "flips": (0, 2, 4, 6),
    "d4": tuple(range(8)),
}
"""Dihedral codes of each setting: ``code % 4`` quarter turns, then a left-right flip if
``code >= 4`` (the codes of the training augmentation)."""


def apply(batch: torch.Tensor, code: int) -> torch.Tensor:
    """Transform ``code`` of a batch's last two axes (a new tensor)."""
    out = torch.rot90(batch, code % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if code >= 4 else out.clone()


def undo(probs: np.ndarray, code: int) -> np.ndarray:
    """The inverse of :func:`apply` on a result's last two axes (a view)."""
    out = probs[..., ::-1] if code >= 4 else probs
    return np.rot90(out, -(code % 4), axes=(-2, -1))


class AugmentedScorer:
    """A scorer whose probabilities are the mean over the dihedral transforms of a window."""

    def __init__(self, scorer: Scorer, tta: TTA) -> None:
        """Wrap ``scorer``; ``tta`` chooses the transforms (:data:`TRANSFORMS`)."""
        self.scorer = scorer
        self.codes = TRANSFORMS[tta]
        self.bands, self.classes = scorer.bands, scorer.classes
        self.channels_last = scorer.channels_last
        self.window_multiple = scorer.window_multiple
        self.meta: dict[str, Any] = {**scorer.meta, "tta": tta}
        self.device = scorer.device

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Mean probabilities ``(B, K, h, w)`` of the transformed windows."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        total: np.ndarray | None = None
        for code in self.codes:
            # a fresh copy per transform: the scorer may overwrite its input
            probs = undo(self.scorer(apply(batch, code).contiguous(memory_format=layout)), code)
            total = probs.copy() if total is None else total + probs
        assert total is not None
        return total / len(self.codes)


def augmented(scorer: Scorer, tta: TTA) -> Scorer:
    """``scorer`` with test-time augmentation ``tta``.

    Itself for ``none`` or a per-pixel kind; a scorer made of ``members`` (an ensemble)
    gets each member augmented instead, so that its per-pixel members run once.
    """
    if tta == "none" or getattr(scorer, "per_pixel", False):
        return scorer
    members = getattr(scorer, "members", None)
    if members is not None:
        scorer.members = [augmented(m, tta) for m in members]  # type: ignore[attr-defined]
        scorer.meta = {**scorer.meta, "tta": tta}
        return scorer
    return AugmentedScorer(scorer, tta)
