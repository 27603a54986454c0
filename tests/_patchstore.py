"""A tiny synthetic patch store (the layout of docs/contracts.md "Patches"), written by code."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landcover.prepare.store import stores

CLASSES = ["tree", "water", "built_up"]
BANDS = ["B02", "B03", "B04", "B08"]


def make_patch_store(
    root: Path,
    areas: dict[str, dict[str, int]] | None = None,
    size: int = 32,
    bands: list[str] | None = None,
    classes: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``{root}/{area}/images.npy``, ``labels.npy``, ``index.parquet``, class weights.

    Args:
        root: the patches folder (``results/patches``).
        areas: per area, how many patches of each split, e.g. ``{"a": {"train": 8}}``.
        size: patch side in pixels.
        bands: band names (one channel each).
        classes: class names.
        seed: seed of the random content.

    Returns:
        Paths: ``patches_dir``, ``index``, ``class_weights``; ``areas``: the area names,
        ``stores``: area -> :class:`landcover.prepare.store.Store`.
    """
    areas = areas or {"a": {"train": 12, "val": 4}, "b": {"train": 12, "val": 4}}
    bands = bands or BANDS
    classes = classes or CLASSES
    rng = np.random.default_rng(seed)
    k, c = len(classes), len(bands)
    signature = rng.uniform(0.05, 0.5, size=(k, c)).astype(np.float32)
    tables = []
    for area, splits in areas.items():
        n = sum(splits.values())
        # labels: a few rectangles of classes on a background class
        labels = np.zeros((n, size, size), np.uint8)
        for i in range(n):
            labels[i] = rng.integers(k)
            for _ in range(3):
                r, q = rng.integers(0, size - 4, 2)
                labels[i, r : r + size // 3, q : q + size // 3] = rng.integers(k)
        labels[:, :2, :2] = 255  # a few ignored pixels
        images = signature[labels.clip(0, k - 1)].transpose(0, 3, 1, 2).copy()
        images += rng.normal(0, 0.03, images.shape).astype(np.float32)
        images[:, :, :2, :2] = np.nan  # invalid where ignored
        folder = root / area
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "images.npy", images.astype(np.float32))
        np.save(folder / "labels.npy", labels)
        split = [s for s, m in splits.items() for _ in range(m)]
        table = pd.DataFrame(
            {
                "area": area,
                "patch": np.arange(n),
                "row": 0,
                "col": np.arange(n) * size,
                "size": size,
                "valid_fraction": 1.0,
                "split": split,
                "block": 0,
                "crs": "EPSG:32628",
            }
        )
        for j, name in enumerate(classes):
            table[f"count_{name}"] = (labels == j).sum((1, 2)).astype(np.int64)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    geometry = shapely.box(table["col"], 0, table["col"] + size, size)
    gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326").to_parquet(root / "index.parquet")
    train = table[table["split"] == "train"]
    counts = train[[f"count_{name}" for name in classes]].sum().to_numpy(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1) / k).tolist()
    (root / "class_weights.json").write_text(
        json.dumps(
            {
                "method": "inverse_frequency",
                "classes": classes,
                "weights": weights,
                "counts": counts.tolist(),
                "absent": [],
            }
        )
    )
    names = list(areas)
    return {
        "patches_dir": root,
        "index": root / "index.parquet",
        "class_weights": root / "class_weights.json",
        "areas": names,
        "stores": stores(
            names,
            [root / a / "images.npy" for a in names],
            [root / a / "labels.npy" for a in names],
        ),
    }
