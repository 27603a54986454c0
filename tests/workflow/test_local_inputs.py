"""Local source files are inputs of the acquire rules: replacing one reruns its area.

A tiny area with local imagery (one file per band, a ``{band}`` pattern) and local
labels is aligned; replacing the labels file makes a dry run list ``acquire_labels``
and ``align_area`` again, and the rerun reads the new file; a replaced band file does
the same for ``acquire_imagery``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from landcover.grid import area_grid

BBOX = [-16.50, 15.00, -16.49, 15.01]
GRID = area_grid(tuple(BBOX), 10)
TARGET = "results/aligned/site/labels.tif"


def write_raster(path: Path, values: np.ndarray, nodata: float | None = None) -> None:
    """A one-band 10 m raster in the area's UTM zone, 100 m beyond its grid each side."""
    left, _, _, top = GRID.bounds
    profile = {
        "driver": "GTiff",
        "count": 1,
        "height": values.shape[0],
        "width": values.shape[1],
        "dtype": values.dtype,
        "crs": GRID.crs,
        "transform": Affine(10, 0, left - 100, 0, -10, top + 100),
        "nodata": nodata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)


def shape() -> tuple[int, int]:
    return GRID.height + 20, GRID.width + 20


def write_band(path: Path, dn: int) -> None:
    ramp = np.arange(shape()[0] * shape()[1]).reshape(shape()) % 50
    write_raster(path, (dn + ramp).astype(np.uint16))


def write_codes(path: Path, codes: list[int]) -> None:
    write_raster(path, np.resize(np.array(codes, np.uint8), shape()), nodata=0)


def newer_than(path: Path, output: Path) -> None:
    """Give ``path`` an mtime after ``output``'s, as a later replacement has."""
    later = output.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))


@pytest.mark.slow
def test_replacing_a_local_file_reruns_its_area(
    tmp_path: Path, tiny_config, run_snakemake, job_counts
) -> None:
    write_band(tmp_path / "data" / "img_B02.tif", 500)
    write_band(tmp_path / "data" / "img_B03.tif", 700)
    write_codes(tmp_path / "data" / "labels.tif", [10, 20])
    config = tiny_config(
        areas={"site": {"bbox": BBOX}},
        holdout=[],
        split={"method": "blocks", "block_size": 64, "buffer": 8, "val_fraction": 0.3},
        imagery={"kind": "local", "root": "data/img_{band}.tif", "bands": ["B02", "B03"]},
        labels={"kind": "local", "root": "data/labels.tif"},  # relative to the workdir
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    def dry_run() -> dict[str, int]:
        done = run_snakemake(tmp_path, "-n", TARGET)
        assert done.returncode == 0, done.stderr[-3000:]
        return {} if "Nothing to be done" in done.stdout + done.stderr else job_counts(done.stdout)

    built = run_snakemake(tmp_path, TARGET)
    assert built.returncode == 0, built.stderr[-3000:]
    assert dry_run() == {}

    write_codes(tmp_path / "data" / "labels.tif", [20])  # fixed in place
    newer_than(tmp_path / "data" / "labels.tif", tmp_path / TARGET)
    assert dry_run() == {"acquire_labels": 1, "align_area": 1}
    rebuilt = run_snakemake(tmp_path, TARGET)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    with rasterio.open(tmp_path / "resources" / "raw" / "site" / "labels.tif") as raw:
        assert set(np.unique(raw.read(1))) <= {0, 20}  # the new file, not the stale copy

    newer_than(tmp_path / "data" / "img_B02.tif", tmp_path / TARGET)  # touched only:
    assert dry_run() == {}  # Snakemake compares checksums of small files before rerunning
    write_band(tmp_path / "data" / "img_B03.tif", 800)  # one band's file replaced
    newer_than(tmp_path / "data" / "img_B03.tif", tmp_path / TARGET)
    assert dry_run() == {"acquire_imagery": 1, "align_area": 1}
