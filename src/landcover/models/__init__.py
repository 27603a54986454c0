"""Model kinds: a registry of ``{kind: module}``, each with ``train`` and ``load``.

A model kind is a package or module with:

- ``train(*, stores, index, class_weights, outputs, bands, classes, model, training,
  device, threads, seed, processes) -> dict``: trains on the patch stores and writes the
  declared outputs (:class:`Outputs`: best and last artefacts, ``history.csv``,
  ``hardware.json``); a kind that combines trained experiments (``ensemble``) also takes
  ``members``;
- ``load(path, device) -> Scorer``: a trained artefact as a :class:`Scorer` for the
  mapping engine;
- ``uses_gpu``: whether a ``cuda`` job of the kind holds a GPU (the rules' ``gpu``
  resource). The module is imported when the workflow is planned: keep torch and other
  heavy imports inside ``train`` and ``load``.

The config's ``model.kind`` picks it. Adding a kind means one module and one entry in
:data:`KINDS` (and its name in the schema's ``model.kind`` enum); rules, scripts, mapping
and evaluation do not change. The contract is in ``docs/contracts.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from landcover.errors import ConfigError


class Scorer(Protocol):
    """A trained model as the mapping engine sees it."""

    bands: list[str]
    """Band names it takes, in order (read from the image by description)."""
    classes: list[str]
    """Class names it scores, in index order."""
    channels_last: bool
    """Whether it wants batches laid out channels-last."""
    window_multiple: int
    """Window sides must be a multiple of this (1: any)."""
    meta: dict[str, Any]
    """Its description of itself (provenance tags of the map)."""
    device: Any
    """Where it runs (a torch device or its name): the map's ``device`` tag."""

    def __call__(self, batch: Any) -> np.ndarray:
        """Probabilities ``(B, classes, h, w)`` float32 of a batch of windows.

        ``batch``: ``(B, bands, h, w)`` float32 reflectance (NaN: nodata); the scorer may
        overwrite it.
        """
        ...


@dataclass(frozen=True)
class Outputs:
    """The declared outputs of a training run, each named by the rule (every kind writes them)."""

    best: Path
    last: Path
    history: Path
    hardware: Path

    def __post_init__(self) -> None:
        """Accept strings (Snakemake's output paths) as well as paths."""
        for field in ("best", "last", "history", "hardware"):
            object.__setattr__(self, field, Path(getattr(self, field)))

    @property
    def resume_dir(self) -> Path:
        """The per-epoch state, beside the outputs (not declared: it survives a killed job)."""
        return self.best.parent / "resume"


KINDS: dict[str, str] = {
    "segmentation": "landcover.models.segmentation",
    "pixel": "landcover.models.pixel",
    "ensemble": "landcover.models.ensemble",
}
"""``model.kind`` -> the module that implements it (imported on use: the torch-free rules
of the data half never import a model kind)."""


def model_kind(kind: str) -> ModuleType:
    """The module of a ``model.kind``.

    Raises:
        ConfigError: naming the key and the known kinds.

    """
    if kind not in KINDS:
        raise ConfigError(f"model.kind '{kind}' is unknown; use one of {sorted(KINDS)}.")
    return importlib.import_module(KINDS[kind])


def train(kind: str, *, members: Sequence[Mapping[str, str]] = (), **kwargs: Any) -> dict[str, Any]:
    """Train a model of ``kind`` (see the module docstring for the arguments).

    ``members``: the trained experiments an ensemble combines (``{"experiment", "kind",
    "path"}`` each), passed on only when there are any (only an ensemble has members).
    """
    if members:
        kwargs["members"] = list(members)
    return model_kind(kind).train(**kwargs)


def load(kind: str, path: str | Path, device: str) -> Scorer:
    """A trained artefact of ``kind`` as a scorer on ``device``."""
    return model_kind(kind).load(path, device)
