"""The local sources: a user's label raster in any CRS, a user's multi-band imagery file.

Fixtures are small rasters with real CRSs written by code; tests/sources/test_realdata.py
runs the same sources on real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import DataError
from landcover.grid import area_grid
from landcover.sources import acquire_imagery, acquire_labels

BORDER_BBOX = (-16.51, 14.995, -16.49, 15.005)  # straddles 15 N
S2_BBOX = (-16.50, 15.00, -16.49, 15.01)
S2_CRS = "EPSG:32628"
GRID = area_grid(S2_BBOX, 10)
LEFT, BOTTOM, RIGHT, TOP = GRID.bounds


def test_labels_local_any_crs(tmp_path: Path) -> None:
    """A user's label raster in UTM: the window over the bbox, own codes kept."""
    grid = area_grid((-16.52, 14.98, -16.46, 15.04), 30)
    src = tmp_path / "my_labels.tif"
    codes = (np.arange(grid.width * grid.height).reshape(grid.shape) % 7 + 1).astype(np.uint16)
    with rasterio.open(
        src, "w", driver="GTiff", dtype="uint16", count=1, nodata=0, **grid.profile()
    ) as dst:
        dst.write(codes, 1)
    out = tmp_path / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "local", root=str(src), version="v200", out=out)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32628
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0  # written as uint8
        window = ds.window(*ds.bounds)
        data, transform = ds.read(1), ds.transform
        assert data.shape[0] < grid.height and data.shape[1] < grid.width
    col = round((transform.c - grid.transform.c) / 30)
    row = round((grid.transform.f - transform.f) / 30)
    assert window.width == data.shape[1]
    np.testing.assert_array_equal(data, codes[row : row + data.shape[0], col : col + data.shape[1]])


def write_local_labels(path: Path, codes: np.ndarray, nodata: float | None) -> None:
    grid = area_grid((-16.52, 14.98, -16.46, 15.04), 30)
    values = np.resize(codes, grid.shape).astype(codes.dtype)
    with rasterio.open(
        path, "w", driver="GTiff", dtype=codes.dtype, count=1, nodata=nodata, **grid.profile()
    ) as dst:
        dst.write(values, 1)


def test_labels_local_codes_above_255_are_an_error(tmp_path: Path) -> None:
    src = tmp_path / "my_labels.tif"
    write_local_labels(src, np.array([1, 2, 300], dtype=np.uint16), nodata=0)
    out = tmp_path / "raw" / "labels.tif"
    with pytest.raises(DataError, match=r"Area 'delta'.*my_labels\.tif.*\[300\].*0\.\.255"):
        acquire_labels("delta", BORDER_BBOX, "local", root=str(src), version="v200", out=out)
    assert not out.exists() and not any(out.parent.glob("*"))


def test_labels_local_wide_nodata_becomes_uint8(tmp_path: Path) -> None:
    """A uint16 file with nodata 65535: codes kept, nodata 0 (255 when 0 is a code)."""
    src = tmp_path / "my_labels.tif"
    write_local_labels(src, np.array([1, 65535, 200], dtype=np.uint16), nodata=65535)
    out = tmp_path / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "local", root=str(src), version="v200", out=out)
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert set(np.unique(ds.read(1))) == {0, 1, 200}


def test_local_multiband_imagery(tmp_path: Path) -> None:
    """kind 'local': one multi-band file in another grid, DN scaled by the arguments."""
    src = tmp_path / "mine.tif"
    left, top = LEFT - 100, TOP + 100
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        width=140,
        height=140,
        count=2,
        dtype="uint16",
        crs=S2_CRS,
        transform=Affine(10, 0, left, 0, -10, top),
    ) as dst:
        dst.write(np.full((2, 140, 140), 500, dtype=np.uint16) * np.array([1, 2])[:, None, None])
        dst.descriptions = ("B05", "B02")
    out = tmp_path / "imagery.tif"
    acquire_imagery(
        "delta",
        S2_BBOX,
        "local",
        root=str(src),
        bands=["B02", "B05"],
        out=out,
        scale=1e-4,
        offset=0,
        resolution=10,
    )
    with rasterio.open(out) as ds:
        assert ds.transform == GRID.transform
        b02, b05 = ds.read(1), ds.read(2)
    assert (b02 == 1000 + 1000).all() and (b05 == 500 + 1000).all()
