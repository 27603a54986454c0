"""The segmentation model kind: an smp network (U-Net by default) trained with torch.

Modules by concept: :mod:`.nets` (the network factory and checkpoints), :mod:`.data`
(dataset, sampler, normalisation), :mod:`.losses`, :mod:`.loop` (one train step, one
epoch, validation: shared with the bench), :mod:`.resume`, :mod:`.distributed`,
:mod:`.trainer` and :mod:`.scorer` (a trained network for the mapping engine);
:mod:`.bench` measures its throughput per engine.

Importing this package imports no torch (the workflow plans the bench from here); the
kind's entry points import it when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landcover.models.segmentation.scorer import SegmentationScorer

uses_gpu = True
"""A ``cuda`` job of this kind holds a GPU (``resources: gpu``)."""


def train(**kwargs: Any) -> dict[str, Any]:
    """Train a network (:func:`landcover.models.segmentation.trainer.train`)."""
    from landcover.models.segmentation.trainer import train as train_network

    return train_network(**kwargs)


def load(path: str | Path, device: str) -> SegmentationScorer:
    """A trained checkpoint as a scorer (:func:`landcover.models.segmentation.scorer.load`)."""
    from landcover.models.segmentation.scorer import load as load_scorer

    return load_scorer(path, device)
