"""The per-pixel model kind: gradient-boosted trees (LightGBM) on each pixel's band values.

The baseline every leaderboard carries beside the segmentation networks: no spatial
context, trained in seconds on the CPU. :mod:`.samples` draws labelled pixels from the
patch stores, :mod:`.trainer` fits and selects the trees, :mod:`.scorer` maps with them.
LightGBM rather than scikit-learn's forests: it trains multi-class boosted trees on
hundreds of thousands of pixels in seconds on 2 cores, takes per-pixel weights (the
class weights the networks use) and early-stops on a validation set, and its model is
plain text, so an artefact loads without unpickling anything.

Importing this package imports neither torch nor LightGBM; the entry points do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landcover.models.pixel.scorer import PixelScorer

uses_gpu = False
"""It runs on the CPU: a ``cuda`` job of this kind holds no GPU."""


def train(**kwargs: Any) -> dict[str, Any]:
    """Fit the trees (:func:`landcover.models.pixel.trainer.train`)."""
    from landcover.models.pixel.trainer import train as train_trees

    return train_trees(**kwargs)


def load(path: str | Path, device: str) -> PixelScorer:
    """A trained artefact as a scorer (:func:`landcover.models.pixel.scorer.load`)."""
    from landcover.models.pixel.scorer import load as load_scorer

    return load_scorer(path, device)
