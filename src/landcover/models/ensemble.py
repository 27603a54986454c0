"""The ensemble model kind: the mean of the class probabilities of other experiments.

An experiment of ``model.kind: ensemble`` names trained experiments in ``model.members``
(for example the U-Net and the per-pixel baseline); its map is the per-pixel mean of
their class probabilities, equal weights, mapped and scored by the same rules as any
other kind, so the leaderboard shows whether the whole beats each part.

Nothing is trained: :func:`train` checks the members' trained artefacts and writes a
small artefact that refers to them (paths relative to its own folder, so the fold of a
leave-one-area-out run refers to its own members); :func:`load` loads every member with
its own kind's ``load`` and returns an :class:`EnsembleScorer`. The members' artefacts
must therefore stay beside the ensemble's (``results/models/{member}/{device}/best.pt``).

Importing this module imports no torch; the entry points do.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landcover.classes import class_names
from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path

if TYPE_CHECKING:
    import torch

    from landcover.models import Outputs, Scorer

log = logging.getLogger(__name__)

KIND = "ensemble"
"""Its ``model.kind``."""

uses_gpu = True
"""A ``cuda`` job maps with its members on the GPU. The rules hold one only when a
member's kind uses one (``get_gpus``): an ensemble of per-pixel models holds none."""


def train(
    *,
    stores: Mapping[str, Any],
    index: str | Path,
    class_weights: str | Path,
    outputs: Outputs,
    bands: Sequence[str],
    classes: Sequence[str | Mapping[str, Any]],
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    device: str,
    threads: int,
    seed: int,
    processes: int,
    members: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Write the artefact of an ensemble of trained members; nothing is trained.

    Args follow the model-kind contract (:mod:`landcover.models`), plus ``members``: one
    ``{"experiment", "kind", "path"}`` per name of ``model.members``, in that order,
    ``path`` being the member's ``best.pt`` (an input of the rule). Each member is loaded
    on the CPU to check that it scores the config's bands and classes. The patch stores,
    ``training``, ``threads`` and ``processes`` are not used.

    Writes ``best.pt`` and ``last.pt`` (the same ``{"meta"}``: ``kind``, ``bands``,
    ``classes``, ``members`` with paths relative to the artefact's folder, ``weights``),
    a one-row ``history.csv`` (no epochs: its losses and mIoU are empty) and
    ``hardware.json`` (the CPU the job ran on).

    Returns:
        ``members`` (experiment names) and ``precision`` (None: nothing was computed).

    Raises:
        ConfigError: the members passed do not match ``model.members``.
        DataError: a member's artefact is missing, unreadable, or scores other bands or
            classes than the config's.

    """
    names = [str(m) for m in model.get("members") or []]
    if [m["experiment"] for m in members] != names or len(names) < 2:
        raise ConfigError(
            f"model.kind ensemble: the trained members passed {[m['experiment'] for m in members]} "
            f"do not match model.members {names}; the training rule must list the members' "
            "best.pt as its `members` input (`members=get_ensemble_members`, in train_model "
            "and in a rule that reuses it with other inputs, such as fold_train_model)."
        )
    wanted = {"bands": [str(b) for b in bands], "classes": class_names(classes)}
    for member in members:
        _check_member(member, wanted)
    folder = outputs.best.parent
    meta = {
        "kind": KIND,
        **wanted,
        "members": [
            {
                "experiment": m["experiment"],
                "kind": m["kind"],
                "path": os.path.relpath(m["path"], folder),
            }
            for m in members
        ],
        "weights": [1.0 / len(members)] * len(members),
        "seed": int(seed),
    }
    _write(outputs, meta, seed)
    log.info("ensemble of %s: the mean of their class probabilities", ", ".join(names))
    return {"members": names, "precision": None}


def _check_member(member: Mapping[str, str], wanted: Mapping[str, list[str]]) -> None:
    """Load a member on the CPU; it must score the config's bands and classes."""
    from landcover.models import load as load_kind

    scorer = load_kind(member["kind"], member["path"], "cpu")
    for what, names in wanted.items():
        if list(getattr(scorer, what)) != names:
            raise DataError(
                f"model.kind ensemble: member '{member['experiment']}' ({member['path']}) "
                f"scores {what} {list(getattr(scorer, what))}, the config has {names}; "
                f"retrain it (delete {member['path']} and rerun)."
            )


def _write(outputs: Outputs, meta: dict[str, Any], seed: int) -> None:
    """The declared outputs: the artefact (best = last), a one-row history, hardware."""
    import pandas as pd
    import torch

    from landcover.hardware import describe_hardware, write_hardware_json

    for path in (outputs.best, outputs.last):
        # strings and numbers only: loads with torch.load(weights_only=True)
        with atomic_path(path) as tmp:
            torch.save({"meta": meta}, tmp)
    history = pd.DataFrame(
        {"epoch": [0], "train_loss": [np.nan], "val_loss": [np.nan], "val_miou": [np.nan]}
    )
    with atomic_path(outputs.history) as tmp:
        history.to_csv(tmp, index=False)
    hardware = describe_hardware("cpu", None, seed) | {
        "members": [m["experiment"] for m in meta["members"]]
    }
    write_hardware_json(outputs.hardware, hardware)


class EnsembleScorer:
    """Members' scorers as one: the mean of their class probabilities.

    Attributes:
        members: the members' scorers, in ``model.members`` order.
        bands: band names they take (all the same), in order.
        classes: class names they score (all the same), in index order.
        channels_last: the last member's layout (it gets the engine's batch; the others
            a copy each, in their own layout).
        window_multiple: the least common multiple of the members'.
        meta: the artefact's description of itself.
        device: where it runs: the first member's device that is not the CPU, else
            ``"cpu"`` (the map's ``device`` tag).

    """

    def __init__(self, members: Sequence[Scorer], meta: Mapping[str, Any]) -> None:
        """Combine scorers that take the same bands and score the same classes.

        Raises:
            DataError: fewer than two members, or members that disagree on bands or classes.

        """
        import torch

        if len(members) < 2:
            raise DataError(f"An ensemble needs at least 2 members, got {len(members)}.")
        self.members = list(members)
        self.meta = dict(meta)
        self.bands = _agreed(self.members, "bands")
        self.classes = _agreed(self.members, "classes")
        self.channels_last = bool(self.members[-1].channels_last)
        self.window_multiple = math.lcm(*(int(m.window_multiple) for m in self.members))
        devices = [torch.device(m.device) for m in self.members]
        self.device = next((d for d in devices if d.type != "cpu"), "cpu")

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Mean probabilities ``(B, K, h, w)`` float32 of reflectance ``(B, bands, h, w)``.

        Every member but the last scores its own copy of ``batch`` (members may
        overwrite theirs); the last scores ``batch`` itself when it is in its layout.
        """
        last = len(self.members) - 1
        copies = (
            _in_layout(batch, m.channels_last, reuse=i == last) for i, m in enumerate(self.members)
        )
        total = np.array(self.members[0](next(copies)), dtype=np.float32)  # a C-contiguous copy
        for member, copy in zip(self.members[1:], copies, strict=True):
            probs = member(copy)
            if probs.shape != total.shape:
                raise DataError(
                    f"predict: ensemble members return probabilities of shapes "
                    f"{total.shape} and {probs.shape}; retrain the members with one config."
                )
            total += probs
        total /= len(self.members)
        return total


def _agreed(members: Sequence[Scorer], what: str) -> list[str]:
    """The members' ``bands`` or ``classes``, which must be the same for all."""
    values = [[str(v) for v in getattr(m, what)] for m in members]
    if any(v != values[0] for v in values[1:]):
        raise DataError(
            f"The ensemble's members score different {what} ({values}); retrain them with "
            "the same config."
        )
    return values[0]


def _in_layout(batch: torch.Tensor, channels_last: bool, reuse: bool) -> torch.Tensor:
    """``batch`` itself if ``reuse`` and it is in the layout, else a copy in the layout."""
    import torch

    layout = torch.channels_last if channels_last else torch.contiguous_format
    if reuse and batch.is_contiguous(memory_format=layout):
        return batch
    return torch.empty_like(batch, memory_format=layout).copy_(batch)


def load(path: str | Path, device: str) -> EnsembleScorer:
    """The ensemble written by :func:`train` as a scorer on ``device``.

    Each member is loaded by its own kind's ``load`` on ``device`` (a per-pixel member
    still runs on the CPU), from its path relative to the artefact's folder.

    Raises:
        DataError: the file is missing, truncated or not an ensemble; a member's
            artefact is missing.

    """
    import torch

    from landcover.models import load as load_kind

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise DataError(
            f"Cannot read the ensemble '{path}' ({type(err).__name__}): delete it and rerun "
            f"train_model. Details: {err}"
        ) from err
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != KIND or not meta.get("members"):
        raise DataError(f"'{path}' is not an ensemble (no meta.members); retrain it.")
    scorers = []
    for member in meta["members"]:
        member_path = Path(path).parent / member["path"]
        if not member_path.exists():
            raise DataError(
                f"Ensemble '{path}': its member '{member['experiment']}' has no trained "
                f"model at {member_path}; rerun train_model for it (snakemake {member_path})."
            )
        scorers.append(load_kind(member["kind"], member_path, device))
    return EnsembleScorer(scorers, meta)
