"""Windows of label rasters (landcover.sources.windows): snapping, clipping, uint8 codes."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from landcover.errors import DataError
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
