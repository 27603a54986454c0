"""Training the per-pixel model: boosted trees on sampled pixels, selected on validation mIoU.

Pixels are drawn from the *training* patches (:mod:`.samples`), weighted by the class
weights the networks use, and the trees are grown until the validation pixels' loss
stops improving. The number of trees kept is the one with the best validation mIoU,
the networks' model-selection rule, read every :data:`EVERY` rounds: those rows are the
``history.csv`` of the run (an "epoch" is :data:`EVERY` rounds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landcover.classes import class_names
from landcover.evaluation.metrics import class_scores, confusion_matrix
from landcover.hardware import describe_hardware, write_hardware_json
from landcover.io import atomic_path
from landcover.models import Outputs
from landcover.models.pixel.samples import draw, feature_names, features
from landcover.prepare.store import Store, load_training_data

log = logging.getLogger(__name__)

EVERY = 10
"""Boosting rounds between two validation-mIoU readings (one row of ``history.csv``)."""

PATIENCE = 50
"""Rounds without a lower validation loss before the trees stop growing."""

LEARNING_RATE = 0.1
"""Shrinkage of each tree (LightGBM's default; the round count adapts by early stopping)."""


def train(
    *,
    stores: Mapping[str, Store],
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
) -> dict[str, Any]:
    """Fit boosted trees on labelled pixels of the train patches; write the declared outputs.

    Args follow the model-kind contract (:mod:`landcover.models`); this kind reads
    ``model.trees`` (most boosting rounds) and ``model.max_pixels`` (training pixels drawn),
    and ignores ``training`` (the networks' optimisation) and ``processes``. It runs on the
    CPU whatever ``device`` says, and ``hardware.json`` says so.

    Returns:
        ``best_epoch`` (rounds kept), ``best_miou``, ``epochs`` (rounds grown), ``precision``.

    Raises:
        ConfigError: classes or bands that do not match the patch store.
        DataError: unusable patch store, class weights, or no labelled pixel.

    """
    import lightgbm as lgb

    if device != "cpu":
        log.warning("model.kind pixel runs on the CPU: the %s job trains it there", device)
    names = class_names(classes)
    data = load_training_data(stores, index, class_weights, list(bands), names)
    x_train, y_train = draw(stores, data.train, int(model["max_pixels"]), seed)
    x_val, y_val = draw(stores, data.val, max(1, int(model["max_pixels"]) // 4), seed + 1)
    log.info(
        "pixel model: %d train and %d val pixels, %d features (%s), %d classes",
        len(y_train),
        len(y_val),
        len(feature_names(bands)),
        ", ".join(feature_names(bands)),
        len(names),
    )
    weights = np.asarray(data.class_weights, dtype=np.float64)[y_train]
    params = {
        "objective": "multiclass",
        "num_class": len(names),
        "learning_rate": LEARNING_RATE,
        "num_threads": max(1, int(threads)),
        "seed": int(seed),
        "deterministic": True,
        "force_row_wise": True,  # deterministic, and the faster layout for few features
        "verbose": -1,
    }
    train_set = lgb.Dataset(features(x_train, bands), y_train, weight=weights)
    val_features = features(x_val, bands)
    val_set = lgb.Dataset(val_features, y_val, reference=train_set)
    losses: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=int(model["trees"]),
        valid_sets=[train_set, val_set],
        valid_names=["train", "val"],
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False), lgb.record_evaluation(losses)],
    )
    seconds = time.perf_counter() - start
    history = _history(booster, val_features, y_val, losses, names, seconds)
    best = int(history.loc[history["val_miou"].idxmax(), "epoch"])
    meta = {
        "kind": "pixel",
        "bands": list(bands),
        "features": feature_names(bands),
        "classes": names,
        "precision": "fp32",
        "model": dict(model),
        "seed": int(seed),
        "device": "cpu",
        "rounds": best,
        "val_miou": float(history["val_miou"].max()),
    }
    _write(outputs, booster, best, meta, history, seed)
    log.info(
        "kept %d of %d rounds: val mIoU %.4f", best, booster.current_iteration(), meta["val_miou"]
    )
    return {
        "best_epoch": best,
        "best_miou": meta["val_miou"],
        "epochs": booster.current_iteration(),
        "precision": "fp32",
    }


def _history(
    booster: Any,
    x_val: np.ndarray,
    y_val: np.ndarray,
    losses: Mapping[str, Mapping[str, list[float]]],
    names: list[str],
    seconds: float,
) -> pd.DataFrame:
    """One row per :data:`EVERY` rounds (and the last): losses and validation IoU."""
    grown = booster.current_iteration()
    rounds = sorted({*range(EVERY, grown + 1, EVERY), grown})
    rows = []
    for n in rounds:
        probs = booster.predict(x_val, num_iteration=n)
        cm = confusion_matrix(y_val, probs.argmax(axis=1), len(names))
        iou = class_scores(cm)["iou"]
        rows.append(
            {
                "epoch": n,
                "lr": LEARNING_RATE,
                "train_loss": losses["train"]["multi_logloss"][n - 1],
                "val_loss": losses["val"]["multi_logloss"][n - 1],
                "val_miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
                **{f"iou_{c}": float(v) for c, v in zip(names, iou, strict=True)},
                "epoch_seconds": seconds * min(EVERY, n) / grown,
            }
        )
    return pd.DataFrame(rows)


def _write(
    outputs: Outputs,
    booster: Any,
    best: int,
    meta: dict[str, Any],
    history: pd.DataFrame,
    seed: int,
) -> None:
    """The declared outputs: the kept trees (best), all trees (last), history, hardware."""
    import torch

    for path, rounds in ((outputs.best, best), (outputs.last, booster.current_iteration())):
        # a torch file of strings and numbers: loads with torch.load(weights_only=True)
        payload = {
            "meta": meta | {"rounds": rounds},
            "booster": booster.model_to_string(num_iteration=rounds),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    with atomic_path(outputs.history) as tmp:
        history.to_csv(tmp, index=False)
    hardware = describe_hardware("cpu", "fp32", seed) | {
        "threads": int(booster.params.get("num_threads", 1))
    }
    write_hardware_json(outputs.hardware, hardware)
