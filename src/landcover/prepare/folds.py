"""k-fold cross-validation over spatial blocks: each block's fold, and each fold's split.

``evaluate.folds: K`` deals the spatial blocks of the split (the ``block`` column of
``results/patches/index.parquet``, per area: a unit is an ``(area, block)`` pair) into K
folds named ``k0`` … ``k{K-1}``, deterministically for the config's ``seed``. Fold ``k``
tests on its blocks (split ``holdout``); the train patches nearer than ``split.buffer``
px to a test or validation patch become ``buffer`` (left out); the other blocks train
and validate as the main split's blocks do (a seeded ``split.val_fraction`` of each
area's remaining blocks validates), so a fold is never validated on its test blocks.

The assignment (:func:`assign_folds`) is pure: units are dealt area by area, largest
first (equal sizes in a seeded order), each to the fold where its area has the fewest
labelled pixels so far, then the fold with the fewest overall. So every fold gets a
unit while there are at least K, an area with K blocks or more tests in every fold, and
the folds' pixel counts come out as even as the blocks allow.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path
from landcover.prepare.split import leaking_train, pick_val_blocks, unseen_classes

log = logging.getLogger(__name__)

PathLike = str | Path

FOLD_PATTERN = re.compile(r"^k(0|[1-9][0-9]*)$")
"""A k-fold fold's name: ``k`` and its number."""


def fold_names(k: int) -> list[str]:
    """The names of K folds, ``k0`` … ``k{K-1}`` (the ``{fold}`` wildcard's values)."""
    return [f"k{i}" for i in range(k)]


def fold_number(name: str, k: int) -> int:
    """The number of fold ``name`` (``k3`` -> 3).

    Raises:
        ConfigError: not the name of one of K folds.

    """
    match = FOLD_PATTERN.match(name)
    if match is None or int(match.group(1)) >= k:
        raise ConfigError(
            f"evaluate.folds: '{name}' is not one of the {k} folds {fold_names(k)}; ask for "
            "the `folds` target, or a file of one of those folds."
        )
    return int(match.group(1))


def check_folds(k: int | None) -> int:
    """The configured K, or an error when k-fold cross-validation is off.

    Raises:
        ConfigError: ``evaluate.folds`` is not set.

    """
    if k is None:
        raise ConfigError(
            "evaluate.folds is not set, so there are no folds to build: set evaluate.folds "
            "to the number of folds (an integer >= 2, e.g. 5), or do not ask for the `folds` "
            "target."
        )
    return int(k)


def block_pixels(index: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(area, block)`` unit: its labelled pixels (summed ``count_*``).

    Args:
        index: a split index with ``area``, ``block`` and ``count_<class>`` columns.

    Returns:
        Columns ``area``, ``block``, ``pixels`` (int64), sorted by area and block.

    """
    counts = [c for c in index.columns if c.startswith("count_")]
    pixels = index[counts].sum(axis=1).astype(np.int64) if counts else 0
    frame = pd.DataFrame(
        {"area": index["area"].astype(str), "block": index["block"].astype(str), "pixels": pixels}
    )
    return frame.groupby(["area", "block"], as_index=False, sort=True)["pixels"].sum()


def assign_folds(groups: Sequence[str], weights: Sequence[float], k: int, seed: int) -> np.ndarray:
    """Deal units into ``k`` folds (see the module's docstring for the rule).

    Args:
        groups: each unit's group (its area): a group's units are spread over the folds.
        weights: each unit's size (labelled pixels), >= 0.
        k: number of folds, >= 2.
        seed: the config's ``seed``; it orders units of equal size.

    Returns:
        int64 fold number (0 … k-1) of each unit, in the order given.

    Raises:
        ConfigError: ``k`` < 2 or fewer units than folds.

    """
    groups = np.asarray(groups, dtype=object)
    weights = np.asarray(weights, dtype=np.float64)
    if k < 2 or len(weights) < k:
        raise ConfigError(
            f"evaluate.folds: {k} folds of {len(weights)} spatial blocks; each fold needs a "
            "block of its own. Use fewer folds (at least 2), a smaller split.block_size or "
            "more areas."
        )
    folds = np.full(len(weights), -1, dtype=np.int64)
    total_load, total_count = np.zeros(k), np.zeros(k, dtype=np.int64)
    for group in sorted(set(groups.tolist())):
        members = np.flatnonzero(groups == group)
        rng = np.random.default_rng([seed, zlib.crc32(str(group).encode())])
        shuffled = members[rng.permutation(len(members))]
        ordered = shuffled[np.argsort(-weights[shuffled], kind="stable")]
        load, count = np.zeros(k), np.zeros(k, dtype=np.int64)
        for unit in ordered:
            # the area's lightest fold, then the lightest overall, then the lowest number
            fold = int(np.lexsort((np.arange(k), total_count, total_load, count, load))[0])
            folds[unit] = fold
            load[fold] += weights[unit]
            count[fold] += 1
            total_load[fold] += weights[unit]
            total_count[fold] += 1
    return folds


def block_folds(index: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Each ``(area, block)`` unit of a split index with its fold (:func:`assign_folds`).

    Returns:
        Columns ``area``, ``block``, ``pixels``, ``fold``.

    """
    units = block_pixels(index)
    units["fold"] = assign_folds(units["area"].tolist(), units["pixels"].to_numpy(), k, seed)
    return units


def fold_split(
    index: gpd.GeoDataFrame, fold: int, k: int, buffer: int, val_fraction: float, seed: int
) -> gpd.GeoDataFrame:
    """Split a patch index for fold ``fold`` of ``k`` (see the module's docstring).

    Args:
        index: the split index (``results/patches/index.parquet``: ``area``, ``block``,
            the windows, ``crs``, ``count_<class>``, footprints); its ``split`` is
            replaced.
        fold: the fold's number.
        k: number of folds.
        buffer: ``split.buffer``, px.
        val_fraction: ``split.val_fraction``: share of each area's other blocks that
            validates.
        seed: the config's ``seed``.

    Returns:
        A copy with ``split`` (train / val / holdout / buffer) and ``fold`` (the fold each
        patch's block tests in).

    Raises:
        ConfigError: too few blocks for ``k`` folds, or no train patch left.

    """
    units = block_folds(index, k, seed).set_index(["area", "block"])["fold"]
    keys = pd.MultiIndex.from_arrays([index["area"].astype(str), index["block"].astype(str)])
    out = index.copy()
    out["fold"] = units.reindex(keys).to_numpy(dtype=np.int64)
    split = np.where(out["fold"].to_numpy() == fold, "holdout", "train").astype(object)
    for area in sorted(set(out["area"].astype(str))):
        mask = (out["area"].astype(str) == area).to_numpy() & (split == "train")
        rng = np.random.default_rng([seed, zlib.crc32(area.encode()), fold])
        val_blocks = pick_val_blocks(out.loc[mask, "block"].astype(str).tolist(), val_fraction, rng)
        split[mask & out["block"].astype(str).isin(val_blocks).to_numpy()] = "val"
    split[leaking_train(out, split, buffer)] = "buffer"
    out["split"] = split
    if not (split == "train").any():
        raise ConfigError(
            f"evaluate.folds: fold k{fold} has no train patch left (all tested, validated or "
            "in the buffer). Use more folds, a smaller split.block_size or split.buffer."
        )
    return out


def kfold_split(
    index: PathLike,
    out: PathLike,
    fold: str,
    k: int,
    buffer: int,
    val_fraction: float,
    seed: int,
) -> gpd.GeoDataFrame:
    """Write fold ``fold``'s split index (rule ``kfold_split``; :func:`fold_split`).

    Args:
        index: ``results/patches/index.parquet`` (its ``block`` ids are the units).
        out: ``results/folds/{fold}/patches/index.parquet``: the same GeoParquet, its
            ``split`` the fold's, plus ``fold``.
        fold: the fold's name (``k0`` …).
        k: ``evaluate.folds``.
        buffer: ``split.buffer``.
        val_fraction: ``split.val_fraction``.
        seed: the config's ``seed``.

    Returns:
        The fold's index.

    Raises:
        ConfigError: see :func:`fold_split`.
        DataError: an index without ``block`` (made before the split had blocks).

    """
    frame = gpd.read_parquet(index)
    if "block" not in frame.columns:
        raise DataError(
            f"Patch index '{index}' has no `block` column; delete it and rerun split_patches."
        )
    result = fold_split(frame, fold_number(fold, k), k, buffer, val_fraction, seed)
    counts = result.groupby(["area", "split"]).size().unstack(fill_value=0)
    log.info("fold %s of %d: patches per area and split:\n%s", fold, k, counts.to_string())
    for name, pixels in unseen_classes(result).items():
        log.warning(
            "fold %s: class '%s' has %d px in the test or validation patches but none in a "
            "train patch: its IoU in this fold will be 0.",
            fold,
            name,
            pixels,
        )
    with atomic_path(out) as tmp:
        result.to_parquet(tmp)
    return result
