"""Labelled pixels drawn from the patch stores: the per-pixel model's training data.

Pure array functions inside (:func:`features`, :func:`sample_rows`); :func:`draw` reads
the memory-mapped stores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from landcover.classes import IGNORE
from landcover.prepare.store import Stores, open_images, open_labels, windows

INDICES: dict[str, tuple[str, str]] = {
    "NDVI": ("B08", "B04"),  # vegetation
    "NDWI": ("B03", "B08"),  # open water
    "NDBI": ("B11", "B08"),  # built-up and bare soil
}
"""Normalised differences ``(a - b) / (a + b)`` added as features when both bands exist."""


def feature_names(bands: Sequence[str]) -> list[str]:
    """The features of a pixel: its bands, then every index whose two bands are there."""
    extra = [name for name, (a, b) in INDICES.items() if a in bands and b in bands]
    return [*bands, *extra]


def features(pixels: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """Feature rows ``(N, F)`` float32 of pixels ``(N, bands)`` (NaN stays NaN: missing)."""
    columns = [pixels]
    for name in feature_names(bands)[len(bands) :]:
        a, b = (pixels[:, list(bands).index(band)] for band in INDICES[name])
        with np.errstate(divide="ignore", invalid="ignore"):
            columns.append(((a - b) / (a + b))[:, None])
    return np.concatenate(columns, axis=1).astype(np.float32, copy=False)


def sample_rows(n: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``budget`` of ``n`` rows, drawn without replacement."""
    if n <= budget:
        return np.arange(n)
    return np.sort(rng.choice(n, size=budget, replace=False))


def draw(
    stores: Stores, rows: pd.DataFrame, max_pixels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled, fully valid pixels of some patches: ``(N, bands)`` float32 and ``(N,)`` uint8.

    Each patch contributes the same share of ``max_pixels`` (drawn at random among its
    labelled pixels), so every area and patch counts, whatever the order of the index.
    """
    rng = np.random.default_rng(seed)
    per_patch = max(1, max_pixels // max(1, len(rows)))
    xs, ys = [], []
    for area, group in rows.groupby("area", sort=True):
        images, labels = open_images(stores[str(area)]), open_labels(stores[str(area)])
        for row, col, size in windows(group.sort_values(["row", "col"])):
            block = images[row : row + size, col : col + size]  # (P, P, bands)
            pixels = np.asarray(block, dtype=np.float32).reshape(-1, block.shape[-1])
            label = np.asarray(labels[row : row + size, col : col + size]).reshape(-1)
            keep = np.flatnonzero((label != IGNORE) & np.isfinite(pixels).all(axis=1))
            keep = keep[sample_rows(len(keep), per_patch, rng)]
            xs.append(pixels[keep])
            ys.append(label[keep])
    return np.concatenate(xs), np.concatenate(ys).astype(np.uint8)
