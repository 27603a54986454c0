"""Threads of a mapping job (rule ``predict_area``), by the area's size.

Imported by the Snakefile: it loads no torch.
"""

from __future__ import annotations

from pathlib import Path

import rasterio

SMALL_MAP_PIXELS = 2048 * 2048
"""Areas below this many pixels map on one thread: their job is mostly start-up and
model loading, which a second thread does not speed up, so two such jobs run side by
side instead (bench: the demo's full run, docs/benchmarks.md)."""

__all__ = ["SMALL_MAP_PIXELS", "map_threads"]


def map_threads(image: str | Path, threads: int = 2) -> int:
    """1 for an aligned image under :data:`SMALL_MAP_PIXELS` px, else ``threads``.

    An image not written yet (a dry run plans the job before its input exists) gets
    ``threads``.
    """
    if not Path(image).exists():
        return threads
    with rasterio.open(image) as src:
        return 1 if src.width * src.height < SMALL_MAP_PIXELS else threads
