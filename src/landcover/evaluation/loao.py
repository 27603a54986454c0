"""Cross-validation folds and the table of their scores.

Two schemes run the same rules (``rules/loao.smk``, the ``{scheme}`` and ``{fold}``
wildcards):

* ``loao``, leave-one-area-out: a fold holds out one area (the fold is named after it)
  and trains on all the others; its model maps the held-out area, which is scored over
  the whole scene like any holdout area (``landcover.evaluation.scoring``);
* ``folds``, k-fold (``evaluate.folds: K``): fold ``k0`` … ``k{K-1}`` tests on a K-th of
  the spatial blocks (:mod:`landcover.prepare.folds`); its model maps every area, which
  is scored on the fold's test blocks only.

:func:`summarise_folds` puts the folds' scores side by side: the headline scores of each
fold's ``metrics.json`` (``evaluate``'s own, so the conventions are its: ``miou`` and
``macro_f1`` over the classes present in the reference) and the IoU and support of each
class from its ``per_class_iou.csv``.

Conventions of the table (a mean never hides a class at zero):

* a class absent from a fold's reference has IoU NaN in that fold (undefined, not 0);
* the ``mean`` row averages the folds' scores, skipping NaN: a class absent from a
  fold's reference counts in the mean over the folds where it is present only (NaN
  when it is present in none), while a class present but never predicted counts as 0;
* the ``mean`` row's ``pixels`` and ``support_<class>`` are totals over the folds;
* the spread: ``std_<score>`` columns (``std_miou`` … ``std_iou_<class>``), filled on
  the ``mean`` row only, the sample standard deviation (ddof 1) of the folds' finite
  values (NaN with fewer than two).
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
"""How every leave-one-area-out fold splits its patches, whatever ``split.method`` says.

The held-out area is the test, so it must be neither trained on (``blocks`` alone
would split it into train and val blocks) nor validated on (``areas`` alone
validates training, hence the choice of ``best.pt`` and early stopping, on the
held-out areas): the other areas' blocks validate, with ``split.block_size``,
``split.val_fraction`` and ``split.buffer``. (A k-fold fold validates on blocks too:
:func:`landcover.prepare.folds.fold_split`.)
"""

SCHEMES = {"loao": "holdout", "folds": "fold"}
"""Cross-validation scheme (the ``{scheme}`` wildcard, also its target's name) -> the
summary's first column, which names each row's fold."""

MEAN_ROW = "mean"
"""First-column value of the row that aggregates the folds."""

STD_PREFIX = "std_"
"""Prefix of the columns of the folds' spread (on the ``mean`` row)."""

HEADLINE = ("miou", "overall_accuracy", "macro_f1", "kl_divergence", "pixels")
"""Keys of a fold's ``metrics.json`` the summary reads."""

PER_CLASS_COLUMNS = ("class", "iou", "support")
"""Columns of ``per_class_iou.csv`` the summary reads."""


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (no warning) when there is none."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    return float(values[finite].mean()) if finite.any() else math.nan


def _nanstd(values: np.ndarray) -> float:
    """Sample standard deviation (ddof 1) of the finite values; NaN with fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def _scheme_key(scheme: str) -> str:
    """The summary's first column for ``scheme``.

    Raises:
        ConfigError: an unknown scheme.

    """
    if scheme not in SCHEMES:
        raise ConfigError(f"cross-validation: scheme '{scheme}' is unknown; use {list(SCHEMES)}.")
    return SCHEMES[scheme]


def summarise_folds(
    folds: Mapping[str, tuple[Mapping[str, Any], pd.DataFrame]],
    scheme: str = "loao",
) -> pd.DataFrame:
    """One row per fold, a ``mean`` row and the spread (see the module's conventions).

    Args:
        folds: fold (the held-out area, or ``k0`` …) -> its ``metrics.json`` (as a dict)
            and ``per_class_iou.csv`` table, in the row order wanted.
        scheme: ``loao`` or ``folds`` (:data:`SCHEMES`): names the first column and the
            paths in messages.

    Returns:
        Columns ``holdout`` (``loao``) or ``fold`` (``folds``), :data:`HEADLINE`, then
        ``iou_<class>`` and ``support_<class>`` for every class in index order, then
        ``std_<score>`` for each score (headline scores but ``pixels``, and the IoUs).

    Raises:
        ConfigError: no fold, or an unknown scheme.
        DataError: a table lacks a column, or the folds' classes differ.

    """
    key = _scheme_key(scheme)
    if not folds:
        raise ConfigError(
            f"{scheme}: no fold to summarise; leave-one-area-out needs at least 2 areas in "
            "`areas`, k-fold at least 2 folds (evaluate.folds)."
        )
    names: list[str] | None = None
    rows = []
    for area, (metrics, table) in folds.items():
        missing = [c for c in PER_CLASS_COLUMNS if c not in table.columns]
        missing += [k for k in HEADLINE if k not in metrics]
        if missing:
            raise DataError(
                f"Fold '{area}': its scores lack {missing}; delete "
                f"results/{scheme}/{area}/eval/ and rerun the {scheme} target."
            )
        classes = [str(c) for c in table["class"]]
        if names is None:
            names = classes
        elif classes != names:
            raise DataError(
                f"Fold '{area}' was scored with classes {classes} but another fold with "
                f"{names}; delete results/{scheme}/ and rerun the {scheme} target with one "
                "config."
            )
        rows.append(
            {
                key: area,
                **{key: metrics[key] for key in HEADLINE},
                **{f"iou_{c}": float(v) for c, v in zip(classes, table["iou"], strict=True)},
                **{f"support_{c}": int(v) for c, v in zip(classes, table["support"], strict=True)},
            }
        )
    summary = pd.DataFrame(rows)
    mean: dict[str, object] = {key: MEAN_ROW}
    spread: dict[str, object] = {}
    for column in summary.columns[1:]:
        if column == "pixels" or column.startswith("support_"):
            mean[column] = int(summary[column].sum())
        else:
            mean[column] = _nanmean(summary[column].to_numpy())
            spread[f"{STD_PREFIX}{column}"] = _nanstd(summary[column].to_numpy())
    table = pd.concat([summary, pd.DataFrame([mean])], ignore_index=True)
    for column, value in spread.items():
        table[column] = [math.nan] * len(summary) + [value]
    return table


def fold_summary(
    metrics: Sequence[PathLike],
    per_class: Sequence[PathLike],
    folds: Sequence[str],
    out: PathLike,
    scheme: str = "loao",
) -> pd.DataFrame:
    """Write the folds' summary of one experiment x device (``fold_summary`` rule).

    Args:
        metrics: ``results/{scheme}/{fold}/eval/{experiment}/{device}/metrics.json`` of
            every fold.
        per_class: the ``per_class_iou.csv`` beside each of them.
        folds: each fold's name (the held-out area, or ``k0`` …), in the same order.
        out: the summary CSV (see :func:`summarise_folds`); NaN written as ``NaN``.
        scheme: ``loao`` or ``folds``.

    Returns:
        The table written.

    Raises:
        ConfigError: tables and folds differ in number.
        DataError: an unreadable table (named), or see :func:`summarise_folds`.

    """
    if not len(metrics) == len(per_class) == len(folds):
        raise ConfigError(
            f"{scheme}: {len(metrics)} metrics files and {len(per_class)} per-class tables "
            f"for {len(folds)} folds; give one of each per fold."
        )
    scores = {}
    for name, path, table in zip(folds, metrics, per_class, strict=True):
        what, fix = f"the scores of fold '{name}'", f"delete it and rerun the {scheme} target"
        scores[name] = (read_json(path, what, fix), read_table(table, what, fix=fix))
    summary = summarise_folds(scores, scheme)
    key = SCHEMES[scheme]
    for name, miou, pixels in summary[[key, "miou", "pixels"]].itertuples(index=False):
        log.info("%s %s: mIoU %.4f over %d px", key, name, miou, pixels)
    with atomic_path(out) as tmp:
        summary.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    return summary
