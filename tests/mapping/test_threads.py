"""Threads of a mapping job by the area's size."""

from __future__ import annotations

import numpy as np
import rasterio

from landcover.mapping import threads


def write(path, height, width):
    profile = {"driver": "GTiff", "count": 1, "dtype": "uint8", "height": height, "width": width}
    with rasterio.open(path, "w", **profile, sparse_ok=True) as dst:
        dst.write(np.zeros((1, 1, 1), np.uint8), window=rasterio.windows.Window(0, 0, 1, 1))
    return path


def test_small_areas_map_on_one_thread_large_ones_on_more(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "SMALL_MAP_PIXELS", 100)
    assert threads.map_threads(write(tmp_path / "small.tif", 9, 11)) == 1
    assert threads.map_threads(write(tmp_path / "large.tif", 10, 10), threads=4) == 4
    assert threads.map_threads(tmp_path / "not_yet.tif") == 2  # a dry run's planned job
