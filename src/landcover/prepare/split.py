"""Spatial train / val / holdout split of the patch index, with a leakage buffer."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | Path
SplitMethod = Literal["areas", "blocks", "areas+blocks"]
METHODS: tuple[str, ...] = ("areas", "blocks", "areas+blocks")
SPLITS: tuple[str, ...] = ("train", "val", "holdout", "buffer")
INDEX_CRS = "EPSG:4326"


def block_ids(rows: np.ndarray, cols: np.ndarray, sizes: np.ndarray, block_size: int) -> np.ndarray:
    """Spatial block of each patch, ``"<block row>_<block col>"``, from the patch centre.

    Blocks are ``block_size`` x ``block_size`` px squares of the area grid.
    """
    centre_rows = (rows + sizes / 2) // block_size
    centre_cols = (cols + sizes / 2) // block_size
    return np.array(
        [f"{int(r)}_{int(c)}" for r, c in zip(centre_rows, centre_cols, strict=True)], dtype=object
    )


def pick_val_blocks(
    blocks: Sequence[str], val_fraction: float, rng: np.random.Generator
) -> set[str]:
    """Choose ``round(val_fraction * n)`` of the distinct ``blocks`` for validation.

    At least one when ``val_fraction > 0`` and there are two blocks or more; never
    all of them (one block at least stays for training).
    """
    unique = sorted(set(blocks))
    n = len(unique)
    if n < 2 or val_fraction <= 0:
        return set()
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    return {unique[i] for i in rng.choice(n, size=n_val, replace=False)}


def near_boxes(train_boxes: np.ndarray, other_boxes: np.ndarray, distance: float) -> np.ndarray:
    """Find the ``train_boxes`` closer than ``distance`` to (or overlapping) any other box.

    Returns the indices of those train boxes.

    Distance is per axis (Chebyshev): the other boxes are dilated by ``distance``
    into squares (mitre joins) and a train box is near when its interior meets a
    dilated box; boxes that only touch at an edge are ``distance`` apart, not nearer.
    """
    if len(train_boxes) == 0 or len(other_boxes) == 0:
        return np.empty(0, dtype=np.int64)
    if distance > 0:
        other_boxes = shapely.buffer(other_boxes, distance, cap_style="square", join_style="mitre")
    tree = STRtree(other_boxes)
    i, j = tree.query(train_boxes, predicate="intersects")
    interior = shapely.relate_pattern(train_boxes[i], other_boxes[j], "T********")
    return np.unique(i[interior])


def assign_splits(
    df: gpd.GeoDataFrame,
    holdout: Sequence[str],
    method: SplitMethod,
    block_size: int,
    buffer: int,
    val_fraction: float,
    seed: int,
) -> gpd.GeoDataFrame:
    """Give each patch a ``split`` (train / val / holdout / buffer) and a ``block``.

    * ``"areas"``: patches of the ``holdout`` areas -> ``holdout``, all others ->
      ``train``. There is no ``val`` split then: validation during training uses
      the holdout areas' patches.
    * ``"blocks"``: within each area, patches are grouped by their centre into
      ``block_size`` px blocks; a seeded ``val_fraction`` of the blocks (at least one
      in an area with two blocks or more) -> ``val``. ``holdout`` is not applied.
    * ``"areas+blocks"``: holdout areas as in ``"areas"``; blocks of the others as in
      ``"blocks"``.

    Then a ``train`` patch whose pixel window overlaps or comes closer than ``buffer``
    px (per axis) to a ``val`` or ``holdout`` window of the same area becomes
    ``buffer`` (left out). Across areas (areas that overlap on the ground), the same
    test runs on the footprints in the train patch's CRS, with ``buffer`` px turned
    into metres at that area's pixel size.

    Deterministic for a ``seed``: each area draws from its own generator seeded by
    ``(seed, crc32(area))``, so adding an area does not reshuffle the others.

    Args:
        df: patch index of all areas: ``area, row, col, size`` and ``crs`` (the area
            CRS) columns, geometry in any CRS.
        holdout: names of the areas held out.
        method: ``"areas"``, ``"blocks"`` or ``"areas+blocks"``.
        block_size: side of the spatial blocks in px.
        buffer: gap in px kept between train and val/holdout patches.
        val_fraction: fraction of each area's blocks used for validation.
        seed: random seed.

    Returns:
        A copy of ``df`` with ``split`` and ``block`` columns.

    Raises:
        ConfigError: an unknown method, bad numbers, a holdout name that is not an
            area of the index, or no train patch left.

    """
    if method not in METHODS:
        raise ConfigError(f"split.method: '{method}' is unknown; use one of {list(METHODS)}.")
    if block_size <= 0 or buffer < 0 or not 0 <= val_fraction < 1:
        raise ConfigError(
            f"split: block_size ({block_size}) must be > 0, buffer ({buffer}) >= 0 and "
            f"val_fraction ({val_fraction}) in [0, 1); fix the config's `split` section."
        )
    areas = list(dict.fromkeys(df["area"]))
    unknown = [name for name in holdout if name not in areas]
    if unknown:
        raise ConfigError(
            f"holdout: area(s) {unknown} have no patches in the index (areas: {areas}). "
            "Fix the names in the config's `holdout`: each must be a key of `areas`."
        )
    out = df.copy()
    out["block"] = block_ids(
        out["row"].to_numpy(), out["col"].to_numpy(), out["size"].to_numpy(), block_size
    )
    split = np.full(len(out), "train", dtype=object)
    held = out["area"].isin(holdout).to_numpy() if method != "blocks" else np.zeros(len(out), bool)
    split[held] = "holdout"
    if method == "blocks" and holdout:
        log.info("split.method 'blocks': the holdout areas %s are split by blocks too", holdout)
    if method != "areas":
        for area in sorted(areas):
            if area in holdout and method == "areas+blocks":
                continue
            mask = (out["area"] == area).to_numpy()
            rng = np.random.default_rng([seed, zlib.crc32(area.encode())])
            val_blocks = pick_val_blocks(out.loc[mask, "block"].tolist(), val_fraction, rng)
            split[mask & out["block"].isin(val_blocks).to_numpy()] = "val"
    split[leaking_train(out, split, buffer)] = "buffer"
    out["split"] = split
    if not (split == "train").any():
        raise ConfigError(
            "split: no train patch is left (all held out, val or buffer). Hold out fewer "
            "areas (`holdout`), lower `split.val_fraction` or `split.buffer`."
        )
    return out


def leaking_train(df: gpd.GeoDataFrame, split: np.ndarray, buffer: int) -> np.ndarray:
    """Boolean mask of the train patches too near a val/holdout patch."""
    leaking = np.zeros(len(df), dtype=bool)
    evaluated = np.isin(split, ("val", "holdout"))
    train = split == "train"
    area = df["area"].to_numpy()
    rows, cols, sizes = (df[c].to_numpy(dtype=np.float64) for c in ("row", "col", "size"))
    pixel_boxes = shapely.box(cols, rows, cols + sizes, rows + sizes)
    for name in dict.fromkeys(area):
        here = area == name
        # Same area: exact pixel windows on the shared grid.
        train_idx = np.flatnonzero(here & train)
        other_idx = np.flatnonzero(here & evaluated)
        hits = near_boxes(pixel_boxes[train_idx], pixel_boxes[other_idx], buffer)
        leaking[train_idx[hits]] = True
        # Other areas: footprints in this area's CRS, buffer in its metres.
        other_idx = np.flatnonzero(~here & evaluated)
        if df.crs is None:  # pixel windows: only other areas of the same file, in its pixels
            grid = df["crs"].to_numpy()
            same = other_idx[grid[other_idx] == grid[here][0]]
            if len(train_idx) and len(same):
                geoms = df.geometry.to_numpy()
                leaking[train_idx[near_boxes(geoms[train_idx], geoms[same], buffer)]] = True
            continue
        if len(train_idx) == 0 or len(other_idx) == 0:
            continue
        crs = df["crs"].to_numpy()[train_idx[0]]
        train_geoms = gpd.GeoSeries(df.geometry.to_numpy()[train_idx], crs=df.crs).to_crs(crs)
        other_geoms = gpd.GeoSeries(df.geometry.to_numpy()[other_idx], crs=df.crs).to_crs(crs)
        xmin, _, xmax, _ = shapely.bounds(train_geoms.to_numpy()).T
        pixel = float(np.median((xmax - xmin) / sizes[train_idx]))
        # Shrink the train footprints by a hair (1e-6 px) so that footprints that only touch
        # (adjacent areas) are not taken as overlapping after the round trip through EPSG:4326.
        shrunk = shapely.buffer(train_geoms.to_numpy(), -1e-6 * pixel, join_style="mitre")
        hits = near_boxes(shrunk, other_geoms.to_numpy(), buffer * pixel)
        leaking[train_idx[hits]] = True
    return leaking & train


def _merge(frames: Sequence[gpd.GeoDataFrame], paths: Sequence[str]) -> gpd.GeoDataFrame:
    """Put the per-area indexes in one frame: footprints in EPSG:4326, area CRS in ``crs``.

    Areas without a CRS (pixel windows) stay in their files' pixels, ``crs`` then naming
    the pixel grid (:func:`landcover.prepare.tiling.pixel_grid_id`).

    Raises:
        DataError: areas with and without a CRS together.

    """
    pixels = [path for frame, path in zip(frames, paths, strict=True) if frame.crs is None]
    if pixels and len(pixels) < len(frames):
        raise DataError(
            f"Patch indexes {pixels} have no CRS (areas given as pixel windows of files "
            "without one) but the others have one; they cannot be split together. Give "
            "every area a `window` or every area a `bbox`, then rerun from tile_area."
        )
    if pixels:
        merged = pd.concat(frames, ignore_index=True)
        merged["crs"] = merged["grid"]
        return gpd.GeoDataFrame(merged, geometry="geometry", crs=None)
    for frame in frames:
        frame["crs"] = frame.crs.to_string()
    projected = [frame.to_crs(INDEX_CRS) for frame in frames]
    return gpd.GeoDataFrame(pd.concat(projected, ignore_index=True), crs=INDEX_CRS)


def unseen_classes(index: pd.DataFrame) -> dict[str, int]:
    """Classes with pixels in scored patches (``holdout``, ``val``) but none in ``train``.

    Args:
        index: a split index with ``split`` and one ``count_<class>`` column per class.

    Returns:
        class name -> its pixels in the scored patches, for each class no train patch holds.

    """
    columns = [c for c in index.columns if c.startswith("count_")]
    train = index.loc[index["split"] == "train", columns].sum()
    scored = index.loc[index["split"].isin(["holdout", "val"]), columns].sum()
    unseen = (train == 0) & (scored > 0)
    return {c.removeprefix("count_"): int(scored[c]) for c in columns if unseen[c]}


def split_patches(
    indexes: Sequence[PathLike],
    out: PathLike,
    holdout: Sequence[str],
    method: SplitMethod,
    block_size: int,
    buffer: int,
    val_fraction: float,
    seed: int,
) -> gpd.GeoDataFrame:
    """Merge the per-area patch indexes and split them (see :func:`assign_splits`).

    With ``method="areas"`` no patch is ``val``: training validates on the
    ``holdout`` areas' patches.

    Args:
        indexes: per-area ``index.parquet`` files (footprints in each area's CRS).
        out: the merged GeoParquet: geometry in EPSG:4326, the per-area columns plus
            ``crs`` (area CRS), ``split`` and ``block``.
        holdout: names of the areas held out.
        method: ``"areas"``, ``"blocks"`` or ``"areas+blocks"``.
        block_size: side of the spatial blocks in px.
        buffer: gap in px kept between train and val/holdout patches.
        val_fraction: fraction of each area's blocks used for validation.
        seed: random seed.

    Returns:
        The merged, split index.

    Raises:
        ConfigError: see :func:`assign_splits`.
        DataError: an index without a CRS.

    """
    frames = [gpd.read_parquet(path) for path in indexes]
    if not frames:
        raise ConfigError("split: no patch index given; the config's `areas` is empty.")
    merged = _merge(frames, [str(p) for p in indexes])
    result = assign_splits(merged, holdout, method, block_size, buffer, val_fraction, seed)
    counts = result.groupby(["area", "split"]).size().unstack(fill_value=0)
    log.info("patches per area and split:\n%s", counts.to_string())
    for name, pixels in unseen_classes(result).items():
        log.warning(
            "class '%s' has %d px in the held-out or validation patches but none in a train "
            "patch: no model can learn it, and its IoU will be 0. Add a training area where "
            "it occurs, or hold out another area.",
            name,
            pixels,
        )
    with atomic_path(out) as tmp:
        result.to_parquet(tmp)
    return result
