"""Leave-one-area-out: each area held out in turn, and the table of the folds' scores.

A fold holds out one area (the ``{holdout}`` wildcard) and trains on all the others;
its model maps the held-out area, which is scored over the whole scene like any
holdout area (``landcover.evaluation.scoring``). :func:`summarise_folds` puts the folds' scores
side by side: the headline scores of each fold's ``metrics.json`` (``evaluate``'s own,
so the conventions are its: ``miou`` and ``macro_f1`` over the classes present in the
reference) and the IoU and support of each class from its ``per_class_iou.csv``.

Conventions of the table (a mean never hides a class at zero):

* a class absent from a fold's reference has IoU NaN in that fold (undefined, not 0);
* the ``mean`` row averages the folds' scores, skipping NaN: a class absent from a
  fold's reference counts in the mean over the folds where it is present only (NaN
  when it is present in none), while a class present but never predicted counts as 0;
* the ``mean`` row's ``pixels`` and ``support_<class>`` are totals over the folds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path, read_json, read_table

log = logging.getLogger(__name__)

PathLike = str | Path

FOLD_SPLIT_METHOD = "areas+blocks"
"""How every fold splits its patches, whatever ``split.method`` says.

The held-out area is the test, so it must be neither trained on (``blocks`` alone
would split it into train and val blocks) nor validated on (``areas`` alone
validates training, hence the choice of ``best.pt`` and early stopping, on the
held-out areas): the other areas' blocks validate, with ``split.block_size``,
``split.val_fraction`` and ``split.buffer``.
"""

MEAN_ROW = "mean"
"""``holdout`` value of the row that aggregates the folds."""

HEADLINE = ("miou", "overall_accuracy", "macro_f1", "kl_divergence", "pixels")
"""Keys of a fold's ``metrics.json`` the summary reads."""

PER_CLASS_COLUMNS = ("class", "iou", "support")
"""Columns of ``per_class_iou.csv`` the summary reads."""


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (no warning) when there is none."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    return float(values[finite].mean()) if finite.any() else math.nan


def summarise_folds(
    folds: Mapping[str, tuple[Mapping[str, Any], pd.DataFrame]],
) -> pd.DataFrame:
    """One row per held-out area and a final ``mean`` row (see the module's conventions).

    Args:
        folds: held-out area -> its ``metrics.json`` (as a dict) and ``per_class_iou.csv``
            table, in the row order wanted.

    Returns:
        Columns ``holdout``, :data:`HEADLINE`, then ``iou_<class>`` and
        ``support_<class>`` for every class in index order.

    Raises:
        ConfigError: no fold.
        DataError: a table lacks a column, or the folds' classes differ.

    """
    if not folds:
        raise ConfigError(
            "leave-one-area-out: no fold to summarise; it needs at least 2 areas in `areas`."
        )
    names: list[str] | None = None
    rows = []
    for area, (metrics, table) in folds.items():
        missing = [c for c in PER_CLASS_COLUMNS if c not in table.columns]
        missing += [k for k in HEADLINE if k not in metrics]
        if missing:
            raise DataError(
                f"Fold '{area}': its scores lack {missing}; delete "
                f"results/loao/{area}/eval/ and rerun the loao target."
            )
        classes = [str(c) for c in table["class"]]
        if names is None:
            names = classes
        elif classes != names:
            raise DataError(
                f"Fold '{area}' was scored with classes {classes} but another fold with "
                f"{names}; delete results/loao/ and rerun the loao target with one config."
            )
        rows.append(
            {
                "holdout": area,
                **{key: metrics[key] for key in HEADLINE},
                **{f"iou_{c}": float(v) for c, v in zip(classes, table["iou"], strict=True)},
                **{f"support_{c}": int(v) for c, v in zip(classes, table["support"], strict=True)},
            }
        )
    summary = pd.DataFrame(rows)
    mean: dict[str, object] = {"holdout": MEAN_ROW}
    for column in summary.columns[1:]:
        if column == "pixels" or column.startswith("support_"):
            mean[column] = int(summary[column].sum())
        else:
            mean[column] = _nanmean(summary[column].to_numpy())
    return pd.concat([summary, pd.DataFrame([mean])], ignore_index=True)


def loao_summary(
    metrics: Sequence[PathLike],
    per_class: Sequence[PathLike],
    areas: Sequence[str],
    out: PathLike,
) -> pd.DataFrame:
    """Write the leave-one-area-out summary of one experiment x device (``loao_summary`` rule).

    Args:
        metrics: ``results/loao/{holdout}/eval/{experiment}/{device}/metrics.json`` of
            every fold.
        per_class: the ``per_class_iou.csv`` beside each of them.
        areas: the held-out area of each fold, in the same order.
        out: the summary CSV (see :func:`summarise_folds`); NaN written as ``NaN``.

    Returns:
        The table written.

    Raises:
        ConfigError: tables and areas differ in number.
        DataError: an unreadable table (named), or see :func:`summarise_folds`.

    """
    if not len(metrics) == len(per_class) == len(areas):
        raise ConfigError(
            f"leave-one-area-out: {len(metrics)} metrics files and {len(per_class)} per-class "
            f"tables for {len(areas)} areas; give one of each per held-out area."
        )
    folds = {}
    for area, scores, table in zip(areas, metrics, per_class, strict=True):
        what, fix = f"the scores of fold '{area}'", "delete it and rerun the loao target"
        folds[area] = (read_json(scores, what, fix), read_table(table, what, fix=fix))
    summary = summarise_folds(folds)
    for row in summary.itertuples(index=False):
        log.info("held out %s: mIoU %.4f over %d px", row.holdout, row.miou, row.pixels)
    with atomic_path(out) as tmp:
        summary.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    return summary
