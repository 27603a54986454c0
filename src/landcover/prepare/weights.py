"""Class weights for the loss, from the pixel counts of the train patches."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | Path
WeightMethod = Literal[
    "inverse_frequency", "sqrt_inverse_frequency", "median_frequency", "effective_number"
]
METHODS: tuple[str, ...] = (
    "inverse_frequency",
    "sqrt_inverse_frequency",
    "median_frequency",
    "effective_number",
)


def compute_class_weights(
    counts: np.ndarray,
    method: WeightMethod,
    beta: float,
    names: Sequence[str] | None = None,
    max_weight: float | None = None,
) -> np.ndarray:
    """Per-class loss weights from pixel counts; a class absent from the counts gets 0.

    With ``n_i`` the pixels of class ``i`` and ``K`` the number of classes present:

    * ``"inverse_frequency"``: ``w_i = sum_j n_j / (K * n_i)``.
    * ``"sqrt_inverse_frequency"``: the square root of that, a milder boost of rare
      classes (a class at 0.1 % of the pixels weighs about 30 times a common one, not
      1000 times).
    * ``"median_frequency"`` (Eigen & Fergus 2015): ``f_i = n_i / N_i`` where ``N_i``
      is the labelled pixels of the patches in which class ``i`` appears;
      ``w_i = median(f) / f_i`` over the present classes.
    * ``"effective_number"`` (Cui et al. 2019): ``w_i = (1 - beta) / (1 - beta**n_i)``,
      scaled so that the present classes' weights sum to ``K``.

    Each absent class raises a :class:`UserWarning` naming it.

    Args:
        counts: ``(N, K)`` pixel counts per patch and class, or ``(K,)`` totals (then
            one patch: median frequency treats all pixels as one patch).
        method: one of the three above.
        beta: the effective-number hyper-parameter, in [0, 1).
        names: class names for the warning; default ``class <i>``.
        max_weight: weights above it are set to it (``None``: no cap). A class with a
            few hundred train pixels would otherwise dominate the loss, and the model
            paints it over its neighbours (recall bought with precision).

    Returns:
        float64 ``(K,)`` weights.

    Raises:
        ConfigError: an unknown method or ``beta`` outside [0, 1).
        DataError: no class has any pixel.

    """
    per_patch = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    totals = per_patch.sum(axis=0)
    k_all = totals.shape[0]
    names = list(names) if names is not None else [f"class {i}" for i in range(k_all)]
    present = totals > 0
    if not present.any():
        raise DataError(
            "class weights: no train pixel has a class. Check the split (are all patches "
            "holdout, val or buffer?) and the patch labels."
        )
    for i in np.flatnonzero(~present):
        warnings.warn(
            f"class '{names[i]}' has no pixel in the train patches; its weight is 0. Add an "
            "area where it occurs, or merge it into another class in `classes`.",
            UserWarning,
            stacklevel=2,
        )
    n = totals[present]
    k = int(present.sum())
    match method:
        case "inverse_frequency":
            w = n.sum() / (k * n)
        case "sqrt_inverse_frequency":
            w = np.sqrt(n.sum() / (k * n))
        case "median_frequency":
            patch_totals = per_patch.sum(axis=1)
            appears = per_patch[:, present] > 0
            freq = n / (appears * patch_totals[:, None]).sum(axis=0)
            w = np.median(freq) / freq
        case "effective_number":
            if not 0 <= beta < 1:
                raise ConfigError(
                    f"class_weights.beta must lie in [0, 1), got {beta} (0.9999 is typical)."
                )
            # 1 - beta**n computed as -expm1(n log beta): exact for beta near 1.
            effective = -np.expm1(n * np.log(beta)) if beta > 0 else np.ones_like(n)
            w = (1 - beta) / effective
            w = w * k / w.sum()
        case _:
            raise ConfigError(
                f"class_weights.method: '{method}' is unknown; use one of {list(METHODS)}."
            )
    if max_weight is not None:
        w = np.minimum(w, max_weight)
    weights = np.zeros(k_all, dtype=np.float64)
    weights[present] = w
    return weights


def class_weights(
    index: PathLike,
    out: PathLike,
    class_names: Sequence[str],
    method: WeightMethod,
    beta: float,
    max_weight: float | None = None,
) -> dict[str, object]:
    """Compute class weights from the ``train`` rows of the patch index and write JSON.

    Args:
        index: the split patch index (GeoParquet with ``split`` and ``count_<name>``).
        out: ``class_weights.json``: ``{"method", "classes", "weights", "counts",
            "absent"}``.
        class_names: class names in index order.
        method: see :func:`compute_class_weights`.
        beta: see :func:`compute_class_weights`.
        max_weight: see :func:`compute_class_weights`.

    Returns:
        The JSON content.

    Raises:
        DataError: the index lacks a ``split`` or ``count_<name>`` column.

    """
    names = list(class_names)
    columns = [f"count_{name}" for name in names]
    frame = pd.read_parquet(index)
    missing = [c for c in ["split", *columns] if c not in frame.columns]
    if missing:
        raise DataError(
            f"Patch index '{index}' lacks the column(s) {missing}. It was made with other "
            "`classes` or before the split: delete results/patches/ and rerun `tile_area` "
            "and `split_patches`."
        )
    per_patch = frame.loc[frame["split"] == "train", columns].to_numpy(dtype=np.int64)
    log.info("class weights (%s) from %d train patches", method, len(per_patch))
    weights = compute_class_weights(
        per_patch, method, beta=beta, names=names, max_weight=max_weight
    )
    totals = per_patch.sum(axis=0)
    result: dict[str, object] = {
        "method": method,
        "max_weight": max_weight,
        "classes": names,
        "weights": [float(w) for w in weights],
        "counts": [int(c) for c in totals],
        "absent": [name for name, c in zip(names, totals, strict=True) if c == 0],
    }
    for name, w, c in zip(names, weights, totals, strict=True):
        log.info("  %-12s %12d px  weight %.4f", name, c, w)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result
