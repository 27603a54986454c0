"""The local sources: a user's label raster in any CRS, a user's multi-band imagery file.

Fixtures are small rasters with real CRSs written by code; tests/sources/test_realdata.py
runs the same sources on real files. Bad input (bands that do not match, values that do
not fit the scale, files that miss the area or have no CRS) fails before anything is
written, naming the file and the fix.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import ConfigError, DataError
from landcover.grid import area_grid
from landcover.prepare.align import align_area, local_original
from landcover.sources import acquire_imagery, acquire_labels, source_inputs
from landcover.sources.local import match_bands, range_problem

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
    acquire_labels("delta", BORDER_BBOX, "local", root=str(src), min_coverage=0.5, out=out)
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
        acquire_labels("delta", BORDER_BBOX, "local", root=str(src), min_coverage=0.5, out=out)
    assert not out.exists() and not any(out.parent.glob("*"))


def test_labels_local_wide_nodata_becomes_uint8(tmp_path: Path) -> None:
    """A uint16 file with nodata 65535: codes kept, nodata 0 (255 when 0 is a code)."""
    src = tmp_path / "my_labels.tif"
    write_local_labels(src, np.array([1, 65535, 200], dtype=np.uint16), nodata=65535)
    out = tmp_path / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "local", root=str(src), min_coverage=0.5, out=out)
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
        min_coverage=0.5,
        resolution=10,
    )
    with rasterio.open(out) as ds:
        assert ds.transform == GRID.transform
        b02, b05 = ds.read(1), ds.read(2)
    assert (b02 == 1000 + 1000).all() and (b05 == 500 + 1000).all()


# --------------------------------------------------------------------------- bad input


def write_image(
    path: Path,
    data: np.ndarray,
    *,
    descriptions: tuple[str | None, ...] | None = None,
    crs: str | None = S2_CRS,
    left: float = LEFT - 100,
    top: float = TOP + 100,
    nodata: float | None = None,
) -> Path:
    """A (bands, rows, cols) raster at 10 m whose top-left corner is (left, top)."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "transform": Affine(10, 0, left, 0, -10, top),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = descriptions
    return path


def bands_of(values: list[float], dtype: str = "uint16", size: int = 140) -> np.ndarray:
    """One band per value, each filled with it (a varying pattern on top for realism)."""
    ramp = (np.arange(size * size).reshape(size, size) % 50).astype(np.float64)
    scale = 1e-3 if dtype.startswith("float") else 1
    return np.stack([np.full((size, size), v) + ramp * scale for v in values]).astype(dtype)


def acquire_local_imagery(
    src: Path, out: Path, bands: list[str], scale: float = 1e-4, **settings: Any
) -> Path:
    return acquire_imagery(
        "delta",
        S2_BBOX,
        "local",
        root=str(src),
        bands=bands,
        out=out,
        scale=scale,
        offset=settings.pop("offset", 0.0),
        min_coverage=settings.pop("min_coverage", 0.5),
        resolution=10,
    )


def test_bands_described_as_others_are_refused(tmp_path: Path) -> None:
    """A file described B05,B06,B07,B8A is not taken as B02,B03,B04,B08 for its count."""
    src = write_image(
        tmp_path / "red_edge.tif",
        bands_of([500, 600, 700, 800]),
        descriptions=("B05", "B06", "B07", "B8A"),
    )
    out = tmp_path / "raw" / "imagery.tif"
    out.parent.mkdir()
    with pytest.raises(ConfigError) as info:
        acquire_local_imagery(src, out, ["B02", "B03", "B04", "B08"])
    message = str(info.value)
    assert "Area 'delta'" in message and "red_edge.tif" in message
    assert "no band is described as B02, B03, B04, B08" in message
    assert "['B05', 'B06', 'B07', 'B8A']" in message  # the file's descriptions
    assert "['B02', 'B03', 'B04', 'B08']" in message  # the requested names
    assert "Fix:" in message
    assert not any(out.parent.iterdir())


def test_bands_without_descriptions_are_taken_in_order_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = write_image(tmp_path / "plain.tif", bands_of([500, 1500]))
    out = tmp_path / "imagery.tif"
    with caplog.at_level(logging.WARNING, logger="landcover.sources.local"):
        acquire_local_imagery(src, out, ["B04", "B08"])
    assert "file band 1 -> B04, file band 2 -> B08" in caplog.text
    assert "no band descriptions" in caplog.text
    with rasterio.open(out) as ds:
        assert list(ds.descriptions) == ["B04", "B08"]
        assert ds.read(1).min() >= 1500 and ds.read(2).min() >= 2500


@pytest.mark.parametrize(
    ("descriptions", "bands", "expected"),
    [
        (["B05", "B02"], ["B02", "B05"], [2, 1]),
        (["b2", " B8A ", None], ["B08A", "B02"], [2, 1]),  # loose names, one undescribed
        ([None, None], ["B04", "B08"], [1, 2]),  # no descriptions: file order
        (["", None, "B04", "B03"], ["B03"], [4]),  # more bands than asked for
    ],
)
def test_match_bands(descriptions, bands, expected) -> None:
    assert match_bands(descriptions, bands) == expected


@pytest.mark.parametrize(
    ("descriptions", "bands", "message"),
    [
        (["B05", "B06", "B07", "B8A"], ["B02", "B03", "B04", "B08"], "no band is described"),
        (["B02", "B03", None], ["B02", "B03", "B04"], r"described as B04$"),  # partial
        (["B02", "B02", "B03"], ["B02", "B03"], "more than one band is described as B02"),
        ([None, None, None], ["B02", "B03"], "no band descriptions and 3 band"),
    ],
)
def test_match_bands_refuses(descriptions, bands, message) -> None:
    with pytest.raises(ValueError, match=message):
        match_bands(descriptions, bands)


def test_reflectance_floats_under_an_integer_scale_are_refused(tmp_path: Path) -> None:
    """Floats 0..1 with the default scale 0.0001 would give an all-dark image."""
    src = write_image(
        tmp_path / "reflectance.tif",
        bands_of([0.05, 0.3], dtype="float32"),
        descriptions=("B04", "B08"),
    )
    out = tmp_path / "imagery.tif"
    with pytest.raises(ConfigError) as info:
        acquire_local_imagery(src, out, ["B04", "B08"])
    message = str(info.value)
    assert "Area 'delta': band B04" in message and "reflectance.tif" in message
    assert "imagery.scale 0.0001" in message
    assert "imagery.scale: 1 and imagery.offset: 0" in message
    assert not out.exists()
    acquire_local_imagery(src, out, ["B04", "B08"], scale=1.0)  # the fix works
    with rasterio.open(out) as ds:
        dn = ds.read(1)
    assert dn.min() == 1500 and dn.max() <= 1990  # reflectance 0.05 .. 0.099


def test_dn_above_the_scale_are_refused(tmp_path: Path) -> None:
    """DN of about 30000 with scale 0.0001 would be reflectance 3."""
    src = write_image(tmp_path / "bright.tif", bands_of([30000]), descriptions=("B04",))
    out = tmp_path / "imagery.tif"
    with pytest.raises(ConfigError, match=r"bright\.tif.*imagery\.scale / imagery\.offset.*Fix"):
        acquire_local_imagery(src, out, ["B04"])
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "scale", "offset", "message"),
    [
        ([0.02, 0.9], 1e-4, 0.0, "as reflectance does"),
        ([25000, 30000], 1e-4, 0.0, "reflectance above"),
        ([1000, 2000], 1e-4, -1000.0, "median reflectance"),
        ([1000, 12000], 1e-4, -0.1, None),  # Sentinel-2 L2A with a bright cloud
        ([0.02, 0.9], 1.0, 0.0, None),  # reflectance with scale 1
        ([0, 0], 1e-4, 0.0, None),  # all nodata: the writer says so
    ],
)
def test_range_problem(values, scale, offset, message) -> None:
    dn = np.repeat(np.array(values, dtype=np.float32), 50).reshape(10, 10)
    problem = range_problem(dn, scale, offset)
    assert problem is None if message is None else message in problem


def test_imagery_covering_too_little_of_the_area_is_refused(tmp_path: Path) -> None:
    """A file over the west 30 % of the area fails with both boxes in lon/lat, and passes
    once imagery.min_coverage is lowered."""
    width = int(0.3 * GRID.width)
    src = write_image(
        tmp_path / "strip.tif",
        bands_of([500], size=GRID.height + 20)[:, :, :width],
        descriptions=("B04",),
        left=LEFT,
    )
    out = tmp_path / "raw" / "imagery.tif"
    out.parent.mkdir()
    with pytest.raises(DataError) as info:
        acquire_local_imagery(src, out, ["B04"])
    message = str(info.value)
    assert "Area 'delta': the imagery file" in message and "strip.tif" in message
    assert re.search(r"covers [23][0-9]% of the area", message)
    assert "less than imagery.min_coverage (0.5)" in message
    assert str([-16.5, 15.0, -16.49, 15.01]) in message  # the area's bbox, lon/lat
    assert "[-16.50" in message  # the file's bounds start near the area's west edge
    assert "Fix: set imagery.root" in message
    assert not any(out.parent.iterdir())
    acquire_local_imagery(src, out, ["B04"], min_coverage=0.2)  # lowered: accepted
    assert out.exists()


def test_labels_that_miss_the_area_are_refused(tmp_path: Path) -> None:
    """Labels 50 km away fail at acquisition, naming the user's file, not a raw copy."""
    src = tmp_path / "elsewhere.tif"
    far = area_grid((-16.0, 15.0, -15.95, 15.05), 30)
    with rasterio.open(
        src, "w", driver="GTiff", dtype="uint8", count=1, nodata=0, **far.profile()
    ) as dst:
        dst.write(np.full(far.shape, 3, dtype=np.uint8), 1)
    out = tmp_path / "raw" / "labels.tif"
    out.parent.mkdir()
    with pytest.raises(DataError) as info:
        acquire_labels("delta", BORDER_BBOX, "local", root=str(src), min_coverage=0.5, out=out)
    message = str(info.value)
    assert f"the labels file '{src}' does not overlap the area" in message
    assert str([-16.51, 14.995, -16.49, 15.005]) in message  # the area's bbox
    assert "[-16.0" in message  # the file's west edge, lon/lat
    assert "EPSG:32628" in message and "labels.min_coverage" in message
    assert not any(out.parent.iterdir())


def test_labels_of_only_nodata_over_the_area_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "empty_here.tif"
    write_local_labels(src, np.array([0], dtype=np.uint8), nodata=0)
    out = tmp_path / "raw" / "labels.tif"
    out.parent.mkdir()
    with pytest.raises(DataError, match=r"'.*empty_here\.tif' holds only nodata.*Fix"):
        acquire_labels("delta", BORDER_BBOX, "local", root=str(src), min_coverage=0.5, out=out)
    assert not any(out.parent.iterdir())


def test_rasters_without_a_crs_say_how_to_assign_one(tmp_path: Path) -> None:
    labels = write_image(tmp_path / "nocrs_labels.tif", bands_of([3], "uint8"), crs=None)
    with pytest.raises(DataError) as info:
        acquire_labels(
            "delta", S2_BBOX, "local", root=str(labels), min_coverage=0.5, out=tmp_path / "l.tif"
        )
    message = str(info.value)
    assert re.search(r"nocrs_labels\.tif' \(label raster of area 'delta'\) has no CRS", message)
    assert f"gdal_edit.py -a_srs EPSG:32628 {labels}" in message
    assert "CRSError" not in message
    image = write_image(tmp_path / "nocrs.tif", bands_of([500]), crs=None)
    with pytest.raises(DataError, match=r"nocrs\.tif' \(.*\) has no CRS.*gdal_edit\.py -a_srs"):
        acquire_local_imagery(image, tmp_path / "i.tif", ["B04"])
    assert not (tmp_path / "l.tif").exists() and not (tmp_path / "i.tif").exists()


def test_local_imagery_of_only_nodata_advises_what_fits_a_local_source(tmp_path: Path) -> None:
    """Not imagery.dates / max_cloud: local sources have no dates or clouds."""
    src = write_image(tmp_path / "holes.tif", np.full((1, 140, 140), 9, np.uint16), nodata=9)
    out = tmp_path / "imagery.tif"
    with pytest.raises(DataError) as info:
        acquire_local_imagery(src, out, ["B04"])
    message = str(info.value)
    assert "band B04 of the local imagery" in message and "holes.tif" in message
    assert "entirely nodata" in message and "imagery.root" in message
    assert "max_cloud" not in message and "imagery.dates" not in message
    assert not out.exists()


def test_an_unreadable_label_file_names_it_in_one_clean_sentence(tmp_path: Path) -> None:
    src = tmp_path / "labels.tif"
    src.write_text("not a raster")
    with pytest.raises(DataError) as info:
        acquire_labels(
            "delta", S2_BBOX, "local", root=str(src), min_coverage=0.5, out=tmp_path / "o.tif"
        )
    message = str(info.value)
    assert str(src) in message and ".. " not in message and not message.endswith("..")


# --------------------------------------------------------------------------- inputs


def test_local_files_are_the_inputs_of_acquisition(tmp_path: Path) -> None:
    """Each file a local source reads, so that replacing one reruns its area; no URL, no
    missing file (acquiring it says what is wrong), nothing for other kinds."""
    for name in ("scene.tif", "B02.tif", "B03.tif", "T28_B02.tif", "labels.tif"):
        (tmp_path / name).write_bytes(b"")
    labels = str(tmp_path / "labels.tif")
    image = {"kind": "local", "bands": ["B02", "B03"]}
    assert source_inputs("imagery", image | {"root": str(tmp_path / "scene.tif")}) == [
        str(tmp_path / "scene.tif")
    ]
    assert source_inputs("imagery", image | {"root": str(tmp_path)}) == [
        str(tmp_path / "B02.tif"),
        str(tmp_path / "B03.tif"),
    ]
    pattern = str(tmp_path / "T28_{band}.tif")  # T28_B03.tif is missing
    assert source_inputs("imagery", image | {"root": pattern}) == [str(tmp_path / "T28_B02.tif")]
    assert source_inputs("labels", {"kind": "local", "root": f"file://{labels}"}) == [labels]
    assert source_inputs("labels", {"kind": "local", "root": "https://x.org/l.tif"}) == []
    assert source_inputs("labels", {"kind": "local", "root": str(tmp_path / "no.tif")}) == []
    assert source_inputs("labels", {"kind": "worldcover", "root": labels}) == []
    assert source_inputs("imagery", {"kind": "stac", "root": labels, "bands": ["B02"]}) == []


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"kind": "local", "source": '["/data/labels.tif"]'}, "/data/labels.tif"),
        ({"kind": "local", "source": "/data/T28_{band}.tif"}, "/data/T28_{band}.tif"),
        ({"kind": "worldcover", "source": '["https://x.org/a.tif"]'}, None),
        ({"source": "https://earth-search.aws.element84.com/v1"}, None),
    ],
)
def test_local_original(tags: dict[str, str], expected: str | None) -> None:
    assert local_original(tags) == expected


def test_a_stale_copy_names_itself_the_users_file_and_how_to_rebuild_it(tmp_path: Path) -> None:
    """Labels fixed in place after acquisition: align_area's error is about the copy."""
    src = tmp_path / "my_labels.tif"
    write_local_labels(src, np.array([10, 99], dtype=np.uint8), nodata=0)
    raw = tmp_path / "resources" / "raw" / "delta"
    acquire_labels("delta", S2_BBOX, "local", root=str(src), min_coverage=0.5, out=raw / "l.tif")
    write_local_labels(src, np.array([10], dtype=np.uint8), nodata=0)  # fixed, not reacquired
    image = acquire_local_imagery(
        write_image(tmp_path / "img.tif", bands_of([500])), raw / "i.tif", ["B04"]
    )
    with pytest.raises(DataError) as info:
        align_area(
            "delta",
            S2_BBOX,
            image,
            raw / "l.tif",
            tmp_path / "image.tif",
            tmp_path / "labels.tif",
            classes=[{"name": "tree", "codes": [10], "colour": "#006400"}],
            ignore_codes=[],
            resolution=10,
            crs=None,
            label_resampling="nearest",
        )
    message = str(info.value)
    assert f"'{raw / 'l.tif'}' (the copy of your file '{src}')" in message
    assert "[99] are not in the class map" in message
    assert (
        "`snakemake --forcerun acquire_labels`" in message
        and f"delete '{raw / 'l.tif'}'" in message
    )
    assert not (tmp_path / "labels.tif").exists()
