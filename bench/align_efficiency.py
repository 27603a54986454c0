"""Alignment efficiency: ``landcover.prepare.align.align_area`` against a raw ``reproject``.

Efficiency = seconds of a raw ``rasterio.warp.reproject`` / seconds of ``align_area``,
on the same inputs, onto the same grid, with the same resampling and threads (goal
>= 0.7). Two raw baselines are timed in the same run:

* into GeoTIFFs: the warper writes the bands and labels straight into files with the
  aligned rasters' data types and creation options (what ``gdalwarp`` does): the
  like-for-like baseline, as ``align_area`` writes files too;
* into arrays: the warp alone, in memory, writing excluded: the share of the
  alignment's time spent warping.

``align_area`` adds the reflectance conversion, the validity mask, the class remap,
the colour table and the atomic rename.

The inputs are what ``acquire_imagery`` and ``acquire_labels`` write: uint16 digital
numbers with GDAL scale/offset on the area's UTM grid (10 m), and uint8 WorldCover
codes in EPSG:4326 at 1/12000 degree, both tiled and deflate-compressed; synthetic
smooth landscapes by default, or the raw files of an area of a run.

Usage (from the repository root):
    python bench/align_efficiency.py --threads 2
    python bench/align_efficiency.py --size 2048 --threads 4 --repeat 5
    python bench/align_efficiency.py --raw resources/raw/lakeside --bbox -15.90 16.10 -15.86 16.14
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import rasterio
import yaml
from affine import Affine
from rasterio.warp import reproject
from scipy import ndimage

from landcover.config import validated
from landcover.grid import Grid, area_grid
from landcover.hardware import cpu_model
from landcover.io import gtiff_profile
from landcover.prepare.align import align_area, choose_resampling, image_profile, labels_profile

ROOT = Path(__file__).resolve().parents[1]
DEGREE = 1 / 12000
"""WorldCover's pixel size in degrees."""


def smooth_field(shape: tuple[int, int], scale: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [0, 1): blurred noise with features ``scale`` px wide."""
    field = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), scale, mode="wrap")
    low, high = field.min(), field.max()
    return (field - low) / (high - low + 1e-12)


def write_synthetic_raw(
    folder: Path, bbox: Sequence[float], bands: int, codes: Sequence[int], seed: int = 0
) -> tuple[Path, Path]:
    """Write raw imagery and labels of ``bbox`` laid out like the acquire rules' outputs."""
    rng = np.random.default_rng(seed)
    grid = area_grid(tuple(bbox), 10)  # type: ignore[arg-type]
    imagery = folder / "imagery.tif"
    base = smooth_field(grid.shape, 20, rng)
    # the raw files as the acquire rules write them (landcover.io: tiled, deflate)
    profile = gtiff_profile(grid.crs, grid.transform, grid.shape, bands, "uint16", 0, predictor=2)
    with rasterio.open(imagery, "w", **profile) as dst:
        for band in range(1, bands + 1):
            reflectance = 0.05 + 0.3 * (0.6 * base + 0.4 * smooth_field(grid.shape, 8, rng))
            dn = np.round(10000 * reflectance + 1000).astype(np.uint16)
            dst.write(dn, band)
            dst.set_band_description(band, f"B{band:02d}")
        dst.scales = [1e-4] * bands
        dst.offsets = [-0.1] * bands
    west, south, east, north = bbox
    margin = 4 * DEGREE
    left, top = (
        np.floor((west - margin) / DEGREE) * DEGREE,
        np.ceil((north + margin) / DEGREE) * DEGREE,
    )
    width = int(np.ceil((east + margin - left) / DEGREE))
    height = int(np.ceil((top - south + margin) / DEGREE))
    field = smooth_field((height, width), 25, rng)
    classes = np.asarray(codes, dtype=np.uint8)
    labels_array = classes[np.minimum((field * len(classes)).astype(int), len(classes) - 1)]
    labels = folder / "labels.tif"
    transform = Affine(DEGREE, 0, left, 0, -DEGREE, top)
    label_profile = gtiff_profile(
        "EPSG:4326", transform, (height, width), 1, "uint8", 0, predictor=2
    )
    with rasterio.open(labels, "w", **label_profile) as dst:
        dst.write(labels_array, 1)
    return imagery, labels


def raw_warp(imagery: Path, labels: Path, grid: Grid, threads: int) -> list[np.ndarray]:
    """Warp every band and the labels onto ``grid`` into arrays, as ``align_area`` does."""
    arrays = []
    with rasterio.open(imagery) as src:
        resampling = choose_resampling(src.crs, src.transform, grid)
        for band in range(1, src.count + 1):
            out = np.full(grid.shape, np.nan, dtype=np.float32)
            reproject(
                source=rasterio.band(src, band),
                destination=out,
                src_nodata=src.nodata,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                dst_nodata=np.nan,
                resampling=resampling,
                num_threads=threads,
            )
            arrays.append(out)
    with rasterio.open(labels) as src:
        codes = np.full(grid.shape, src.nodata or 0, dtype=src.dtypes[0])
        reproject(
            source=rasterio.band(src, 1),
            destination=codes,
            src_nodata=src.nodata,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=src.nodata,
            resampling=rasterio.enums.Resampling.nearest,
            num_threads=threads,
        )
        arrays.append(codes)
    return arrays


def raw_warp_to_files(imagery: Path, labels: Path, grid: Grid, folder: Path, threads: int) -> None:
    """Reproject the bands and labels straight into GeoTIFFs like the aligned ones.

    Same grid, resampling, threads, data types and creation options as ``align_area``'s
    outputs (float32 image, uint8 labels, tiled, ZSTD), written by the warper itself
    (``destination=rasterio.band(dst, i)``), as ``gdalwarp`` would.
    """
    with rasterio.Env(GDAL_NUM_THREADS=str(threads)):
        with rasterio.open(imagery) as src:
            resampling = choose_resampling(src.crs, src.transform, grid)
            profile = image_profile(grid, src.count)
            with rasterio.open(folder / "image.tif", "w", **profile) as dst:
                for band in range(1, src.count + 1):
                    reproject(
                        source=rasterio.band(src, band),
                        destination=rasterio.band(dst, band),
                        src_nodata=src.nodata,
                        dst_nodata=np.nan,
                        resampling=resampling,
                        num_threads=threads,
                    )
        with rasterio.open(labels) as src:
            profile = labels_profile(grid) | {"nodata": src.nodata}
            with rasterio.open(folder / "labels.tif", "w", **profile) as dst:
                reproject(
                    source=rasterio.band(src, 1),
                    destination=rasterio.band(dst, 1),
                    src_nodata=src.nodata,
                    dst_nodata=src.nodata,
                    resampling=rasterio.enums.Resampling.nearest,
                    num_threads=threads,
                )


def timed(run: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call (file cache, GDAL)."""
    run()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    """Print the alignment efficiency (raw warp seconds / align_area seconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="synthetic area side in px")
    parser.add_argument("--bands", type=int, default=10, help="synthetic imagery bands")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--raw", type=Path, help="folder with imagery.tif and labels.tif")
    parser.add_argument("--bbox", type=float, nargs=4, help="the raw files' area bbox")
    args = parser.parse_args()
    config = validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    classes, ignore = config["classes"], config["ignore_codes"]
    codes = [code for c in classes for code in c["codes"]] + list(ignore)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.raw:
            if not args.bbox:
                parser.error("--raw needs the area's --bbox W S E N")
            bbox = args.bbox
            imagery, labels = args.raw / "imagery.tif", args.raw / "labels.tif"
        else:
            side = args.size * 10 / 110_000  # degrees; the grid snaps outwards
            bbox = [-16.60, 14.60, -16.60 + side, 14.60 + side]
            imagery, labels = write_synthetic_raw(folder, bbox, args.bands, codes)
        grid = area_grid(tuple(bbox), 10)  # type: ignore[arg-type]
        (folder / "aligned").mkdir()
        (folder / "written").mkdir()

        def align() -> None:
            align_area(
                area="bench",
                bbox=bbox,
                imagery=imagery,
                labels=labels,
                out_image=folder / "aligned/image.tif",
                out_labels=folder / "aligned/labels.tif",
                classes=classes,
                ignore_codes=ignore,
                resolution=config["grid"]["resolution"],
                crs=config["grid"]["crs"],
                label_resampling=config["grid"]["label_resampling"],
                threads=args.threads,
            )

        def warp_to_files() -> None:
            raw_warp_to_files(imagery, labels, grid, folder / "written", args.threads)

        memory_s = timed(lambda: raw_warp(imagery, labels, grid, args.threads), args.repeat)
        files_s = timed(warp_to_files, args.repeat)
        align_s = timed(align, args.repeat)
        with rasterio.open(imagery) as src:
            bands = src.count

    pixels = grid.width * grid.height * (bands + 1) / 1e6
    print(f"cpu: {cpu_model()}, threads {args.threads}, GDAL {rasterio.__gdal_version__}")
    print(
        f"area grid {grid.width} x {grid.height} px, {bands} imagery bands + labels "
        f"({'raw files of ' + str(args.raw) if args.raw else 'synthetic'}), median of "
        f"{args.repeat}"
    )
    print(f"raw reproject, into arrays:    {memory_s:7.3f} s  {pixels / memory_s:7.1f} Mpx/s")
    print(f"raw reproject, into GeoTIFFs:  {files_s:7.3f} s  {pixels / files_s:7.1f} Mpx/s")
    print(f"align_area:                    {align_s:7.3f} s  {pixels / align_s:7.1f} Mpx/s")
    print(f"efficiency vs GeoTIFF warp:    {files_s / align_s:7.3f}  (goal >= 0.7)")
    print(f"efficiency vs in-memory warp:  {memory_s / align_s:7.3f}  (writing excluded)")


if __name__ == "__main__":
    sys.exit(main())
