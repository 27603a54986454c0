"""Write checks: the cost of checking a just-written file, beside the time of writing it.

Side by side: the time of each writer alone, of the check atomic_path now runs on its
temporary file (io._check_complete), and of two alternatives not adopted: decoding every
block of a GeoTIFF and an fsync.

Usage: .venv/bin/python bench/write_checks.py [--folder DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
from rasterio.transform import from_origin

from landcover import io
from landcover.prepare.store import NpyWriter

RNG = np.random.default_rng(0)
T = from_origin(500000, 5000000, 10, 10)


def smooth(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """Random values smoothed along the last axis, scaled to 0-3000 and cast to ``dtype``."""
    base = RNG.random(shape, dtype=np.float32)
    return (np.cumsum(base, axis=-1) / shape[-1] * 3000).astype(dtype)


IMAGE = smooth((10, 2000, 2000), np.float32) / 10000
LABELS = (smooth((2000, 2000), np.float32) / 300).astype(np.uint8)
STATE = {f"w{i}": torch.randn(14_000_000 // 20) for i in range(20)}


def aligned_image(path: Path) -> None:
    """Write what align_area writes: float32 zstd, 10 bands, 2000 x 2000."""
    a = IMAGE
    prof = io.gtiff_profile("EPSG:32633", T, a.shape, 10, "float32", np.nan, codec="zstd")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(a)


def labels(path: Path) -> None:
    """Write a label raster: uint8 zstd, 2000 x 2000."""
    a = LABELS
    prof = io.gtiff_profile("EPSG:32633", T, a.shape, 1, "uint8", 255, codec="zstd")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(a, 1)


MAP_SRC: dict[str, Path] = {}


def map_cog(path: Path) -> None:
    """Write a COG by to_cog of a 4000 x 4000 class map, with overviews."""
    if "src" not in MAP_SRC:
        src = Path(os.environ["WRITE_CHECKS_DIR"]) / "map-source.tif"
        a = (smooth((4000, 4000), np.float32) / 300).astype(np.uint8)
        prof = io.gtiff_profile("EPSG:32633", T, a.shape, 1, "uint8", 255, codec="zstd")
        with rasterio.open(src, "w", **prof) as dst:
            dst.write(a, 1)
        MAP_SRC["src"] = src
    io.to_cog(MAP_SRC["src"], path, resampling="mode")


def patch_store(path: Path) -> None:
    """Write a patch store: 1000 patches x 10 bands x 64 px float32 (164 MB)."""
    patch = RNG.random((10, 64, 64), dtype=np.float32)
    with open(path, "wb") as file:
        writer = NpyWriter(file, np.float32, (1000, 10, 64, 64))
        for _ in range(1000):
            writer.append(patch)
        writer.finish()


def index(path: Path) -> None:
    """Write a patch index: 5000 rows of parquet."""
    pd.DataFrame({"patch": range(5000), "x": RNG.random(5000), "area": "a"}).to_parquet(path)


def checkpoint(path: Path) -> None:
    """Write a checkpoint: 14 M float32 parameters + two Adam moments (a resnet18 U-Net)."""
    moments = {k: (v.clone(), v.clone()) for k, v in STATE.items()}
    torch.save({"state_dict": STATE, "optimizer": moments}, path)


def history(path: Path) -> None:
    """Write a training history: 50 x 20 csv."""
    pd.DataFrame(RNG.random((50, 20))).to_csv(path, index=False)


WRITERS = {
    "aligned image .tif (10x2000x2000 f32 zstd)": (aligned_image, ".tif"),
    "labels .tif (2000x2000 u8 zstd)": (labels, ".tif"),
    "map COG (4000x4000 u8, overviews)": (map_cog, ".tif"),
    "patch store .npy (164 MB)": (patch_store, ".npy"),
    "index .parquet (5000 rows)": (index, ".parquet"),
    "checkpoint .pt (168 MB)": (checkpoint, ".pt"),
    "history .csv": (history, ".csv"),
}


def full_decode(path: Path) -> None:
    """The alternative not adopted: decode every block of every band and overview."""
    if path.suffix != ".tif":
        return
    with rasterio.open(path) as src:
        levels = len(src.overviews(1))
    for level in [None, *range(levels)]:
        with rasterio.open(path, overview_level=level) as src:
            for _, window in src.block_windows(1):
                src.read(window=window)


def fsync(path: Path) -> None:
    """Flush the file at ``path`` to disk (the other alternative not adopted)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(fn: Callable[..., object], *args: object) -> float:
    """Seconds taken by one call of ``fn(*args)``."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    """Print the seconds of each writer, of its check and of the alternatives (medians)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default=None, help="where to write (default: the system temp)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:  # nothing left behind
        os.environ["WRITE_CHECKS_DIR"] = tmp
        run(Path(tmp), args.repeat)


def run(folder: Path, repeat: int) -> None:
    """Time every writer ``repeat`` times in ``folder`` and print the medians."""
    print(
        f"{'writer':46s} {'write s':>8s} {'check s':>8s} {'check %':>8s} "
        f"{'decode s':>8s} {'decode %':>8s} {'fsync s':>8s}"
    )
    for name, (write, suffix) in WRITERS.items():
        rows = []
        for _ in range(repeat):
            path = folder / f"out{suffix}"
            w = timed(write, path)
            c = timed(io._check_complete, path)
            d = timed(full_decode, path)
            f = timed(fsync, path)
            path.unlink()
            rows.append((w, c, d, f))
        w, c, d, f = (statistics.median(col) for col in zip(*rows, strict=True))
        print(
            f"{name:46s} {w:8.3f} {c:8.3f} {100 * c / w:7.1f}% "
            f"{d:8.3f} {100 * d / w:7.1f}% {f:8.3f}"
        )


if __name__ == "__main__":
    main()
