"""Windows of rasters (landcover.sources.windows): snapping, clipping, uint8 codes, the
coverage of an area by a file, files without a CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from landcover.errors import DataError
from landcover.grid import area_grid
from landcover.sources import windows as acq

PX = 12000  # WorldCover pixels per degree


def test_snap_window_ignores_float_noise_of_transforms() -> None:
    # a real WorldCover crop whose origin is 4e-6 px off the grid (float noise)
    transform = Affine(1 / PX, 0, 87524.000004 / PX, 0, -1 / PX, 20541 / PX)
    window = acq.snap_window((7.38, 1.60, 7.42, 1.64), transform, margin=2)
    assert (window.col_off, window.row_off, window.width, window.height) == (1034, 859, 484, 484)


@pytest.mark.parametrize(
    ("codes", "nodata", "expected", "expected_nodata"),
    [
        (np.array([10, 0, 95], np.uint8), 0, [10, 0, 95], 0),
        (np.array([10, 7, 95], np.int32), 7, [10, 7, 95], 7),
        (np.array([0, 65535, 95], np.uint16), 65535, [0, 255, 95], 255),
        (np.array([3, -1, 4], np.int16), -1, [3, 0, 4], 0),
        (np.array([3.0, np.nan, 4.0]), np.nan, [3, 0, 4], 0),
        (np.array([3, 0, 4], np.uint16), None, [3, 0, 4], 0),
    ],
)
def test_label_codes_uint8(codes, nodata, expected, expected_nodata) -> None:
    out, out_nodata = acq.label_codes_uint8(codes, nodata, "labels")
    assert out.dtype == np.uint8 and out.tolist() == expected and out_nodata == expected_nodata


@pytest.mark.parametrize(
    ("codes", "nodata", "message"),
    [
        (np.array([1, 256]), 0, r"\[256\]"),
        (np.array([1, -3]), 0, r"\[-3\]"),
        (np.array([1.5, 2.0]), 0, r"\[1\.5\]"),
        (np.array([0, 255, 5, 65535]), 65535, "both 0 and 255"),
    ],
)
def test_label_codes_uint8_rejects(codes, nodata, message) -> None:
    with pytest.raises(DataError, match=rf"my\.tif.*{message}"):
        acq.label_codes_uint8(codes, nodata, "Area 'a', labels my.tif")


def test_clip_window() -> None:
    from rasterio.windows import Window

    inner, row, col = acq.clip_window(Window(-2, 5, 10, 10), width=6, height=100)
    assert (inner.col_off, inner.row_off, inner.width, inner.height, row, col) == (
        0, 5, 6, 10, 0, 2
    )  # fmt: skip
    assert acq.clip_window(Window(10, 0, 5, 5), width=6, height=6) is None


BBOX = (-16.50, 15.00, -16.49, 15.01)


def test_the_areas_own_grid_covers_all_of_it() -> None:
    grid = area_grid(BBOX, 10)  # snapped outwards: a file on it covers the whole bbox
    footprint = acq.Footprint(CRS.from_string(grid.crs), grid.bounds)
    assert acq.covered_fraction(BBOX, footprint) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ((0.0, 0.0, 0.5, 1.0), 0.5),  # the west half (west, south, east, north as fractions)
        ((0.0, 0.0, 1.0, 0.25), 0.25),  # the south quarter
        ((2.0, 0.0, 3.0, 1.0), 0.0),  # beside it
    ],
)
def test_covered_fraction_in_the_files_crs(part, expected) -> None:
    crs = CRS.from_epsg(32628)
    west, south, east, north = acq.transform_bounds("EPSG:4326", crs, *BBOX)
    width, height = east - west, north - south
    bounds = (
        west + part[0] * width,
        south + part[1] * height,
        west + part[2] * width,
        south + part[3] * height,
    )
    fraction = acq.covered_fraction(BBOX, acq.Footprint(crs, bounds))
    assert fraction == pytest.approx(expected, abs=0.02)


def test_covered_fraction_of_a_lonlat_file() -> None:
    footprint = acq.Footprint(CRS.from_epsg(4326), (-16.50, 15.00, -16.495, 15.01))
    assert acq.covered_fraction(BBOX, footprint) == pytest.approx(0.5, abs=1e-6)
    assert footprint.lonlat == pytest.approx(footprint.bounds)


def test_is_all_nodata() -> None:
    window = acq.LabelWindow(np.zeros((2, 2), np.uint8), Affine.identity(), None, 0, None)
    assert acq.is_all_nodata(window)
    nan = acq.LabelWindow(np.full((2, 2), np.nan), Affine.identity(), None, np.nan, None)
    assert acq.is_all_nodata(nan)
    window.codes[0, 0] = 3
    assert not acq.is_all_nodata(window)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_crs_names_the_file_and_the_command(tmp_path: Path) -> None:
    path = tmp_path / "bare.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8"
    ) as dst:  # no CRS, no transform
        dst.write(np.ones((1, 4, 4), np.uint8))
    with pytest.raises(DataError) as info:
        acq.read_footprint(str(path), "labels of area 'a'")
    message = str(info.value)
    assert f"'{path}' (labels of area 'a') has no CRS" in message
    assert f"gdal_edit.py -a_srs EPSG:32628 {path}" in message and "-a_ullr" in message
    grid = area_grid(BBOX, 10)
    with pytest.raises(DataError, match=r"bare\.tif' \(band B02\) has no CRS"):
        acq.read_onto_grid(str(path), grid, "band B02")


def test_composite_nodata_advice_stays_for_stac(tmp_path: Path) -> None:
    grid = area_grid(BBOX, 10)
    layers = iter([np.full(grid.shape, np.nan, np.float32)])
    with pytest.raises(DataError, match=r"band B02 of the composite.*imagery\.dates"):
        acq.write_imagery("a", grid, ["B02"], layers, {}, tmp_path / "i.tif")
    assert not (tmp_path / "i.tif").exists()
