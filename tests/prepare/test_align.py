"""Alignment of raw imagery (UTM, 10 m + 20 m) and labels (EPSG:4326) onto the area grid."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.shutil import copy as rio_copy
from rasterio.warp import transform as warp_transform

from landcover.errors import ConfigError, DataError
from landcover.grid import area_grid
from landcover.prepare.align import align_area, align_image, choose_resampling
from landcover.sources import acquire_imagery

BBOX = (-15.90, 16.10, -15.89, 16.11)
CLASSES = [
    {"name": "tree", "codes": [10], "colour": "#006400"},
    {"name": "built_up", "codes": [50], "colour": "#FA0000"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
]
IGNORE_CODES = [70]
TREE, BUILT, WATER = 0, 1, 2
MARGIN = 12  # px of 10 m around the area grid in the raw imagery (a multiple of 6: 60 m)
PIX_DEG = 1 / 12000
# Features of the labels, on label pixel edges (degrees).
WATER_SQUARE = (BBOX[0] + 0.002, BBOX[1] + 0.003, BBOX[0] + 0.004, BBOX[1] + 0.005)
BUILT_STRIP = (BBOX[0] + 0.006, BBOX[0] + 0.0065)  # lon range, full height
IGNORED_SQUARE = (BBOX[0] + 0.0005, BBOX[1] + 0.0075, BBOX[0] + 0.0015, BBOX[1] + 0.0085)
NODATA_PX = 20  # the image's bottom-right NODATA_PX x NODATA_PX corner is nodata
SCALES = (1e-4, 1e-4, 1e-4, 2e-4)
OFFSETS = (-0.1, -0.1, -0.1, -0.05)

GRID = area_grid(BBOX, 10)


def write_imagery(path: Path, resolution: int, bands: list[str], seed: int) -> np.ndarray:
    """UTM uint16 DN on a 60 m-aligned grid around the area; returns the DN array."""
    left, top = GRID.transform.c - MARGIN * 10, GRID.transform.f + MARGIN * 10
    factor = resolution // 10
    width = (GRID.width + 2 * MARGIN) // factor
    height = (GRID.height + 2 * MARGIN) // factor
    dn = np.random.default_rng(seed).integers(1000, 5000, (len(bands), height, width))
    dn = dn.astype(np.uint16)
    corner = (MARGIN + NODATA_PX) // factor
    dn[:, height - corner :, width - corner :] = 0
    profile = {
        "driver": "GTiff",
        "crs": GRID.crs,
        "transform": Affine(resolution, 0, left, 0, -resolution, top),
        "width": width,
        "height": height,
        "count": len(bands),
        "dtype": "uint16",
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dn)
        dst.scales = SCALES[: len(bands)]
        dst.offsets = OFFSETS[: len(bands)]
        dst.descriptions = tuple(bands)
        dst.update_tags(source="test", items="a,b", dates="2024-01-01", licence="CC-BY-4.0")
    return dn


def write_labels(path: Path, extra_code: int | None = None, shift_deg: float = 0.0) -> None:
    """WorldCover-like codes in EPSG:4326 at 1/12000 deg around the bbox, with features."""
    west = math.floor(BBOX[0] * 12000 - 60) / 12000 + shift_deg
    north = math.ceil(BBOX[3] * 12000 + 60) / 12000
    width = round((BBOX[2] - BBOX[0]) * 12000) + 120
    height = round((BBOX[3] - BBOX[1]) * 12000) + 120
    lon = west + (np.arange(width) + 0.5) * PIX_DEG
    lat = north - (np.arange(height) + 0.5) * PIX_DEG
    lon2, lat2 = np.meshgrid(lon, lat)
    codes = np.full((height, width), 10, dtype=np.uint8)

    def inside(box: tuple[float, float, float, float]) -> np.ndarray:
        return (lon2 > box[0]) & (lon2 < box[2]) & (lat2 > box[1]) & (lat2 < box[3])

    codes[inside(WATER_SQUARE)] = 80
    codes[(lon2 > BUILT_STRIP[0]) & (lon2 < BUILT_STRIP[1])] = 50
    codes[inside(IGNORED_SQUARE)] = 70
    codes[:3, :] = 0  # nodata rows far outside the area
    if extra_code is not None:
        codes[height // 2 - 2 : height // 2 + 2, width // 2 - 2 : width // 2 + 2] = extra_code
    profile = {
        "driver": "GTiff",
        "crs": "EPSG:4326",
        "transform": Affine(PIX_DEG, 0, west, 0, -PIX_DEG, north),
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes, 1)
        dst.update_tags(source="https://example.org/worldcover", version="v200", doi="x")


@pytest.fixture
def raw(tmp_path: Path) -> dict[str, object]:
    b10, b20, labels = tmp_path / "b10.tif", tmp_path / "b20.tif", tmp_path / "labels.tif"
    dn10 = write_imagery(b10, 10, ["B02", "B03", "B04", "B08"], seed=1)
    dn20 = write_imagery(b20, 20, ["B11"], seed=2)
    write_labels(labels)
    return {"b10": b10, "b20": b20, "labels": labels, "dn10": dn10, "dn20": dn20}


def run(tmp_path: Path, imagery: object, labels: Path, **kwargs: object) -> tuple[Path, Path]:
    out_image, out_labels = tmp_path / "out" / "image.tif", tmp_path / "out" / "labels.tif"
    align_area(
        area="testarea",
        bbox=BBOX,
        imagery=imagery,
        labels=labels,
        out_image=out_image,
        out_labels=out_labels,
        classes=CLASSES,
        ignore_codes=IGNORE_CODES,
        **({"resolution": 10, "crs": None, "label_resampling": "nearest"} | kwargs),
    )
    return out_image, out_labels


def assert_no_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not (out / "image.tif").exists()
    assert not (out / "labels.tif").exists()
    assert not out.exists() or not any(out.iterdir())  # no temporary files left either


@pytest.fixture
def aligned(tmp_path: Path, raw: dict[str, object]) -> dict[str, object]:
    out_image, out_labels = run(tmp_path, [raw["b10"], raw["b20"]], raw["labels"], threads=2)
    with rasterio.open(out_image) as img, rasterio.open(out_labels) as lab:
        return {
            **raw,
            "image": img.read(),
            "labels": lab.read(1),
            "img_meta": (img.crs, img.transform, img.shape, img.dtypes, img.nodata),
            "lab_meta": (lab.crs, lab.transform, lab.shape, lab.dtypes, lab.nodata),
            "descriptions": img.descriptions,
            "img_tags": img.tags(),
            "lab_tags": lab.tags(),
            "colormap": lab.colormap(1),
            "colorinterp": lab.colorinterp,
            "compression": (img.compression, lab.compression),
            "tiled": (img.profile["tiled"], lab.profile["tiled"]),
        }


def test_outputs_share_the_area_grid(aligned: dict) -> None:
    crs, transform, shape, dtypes, nodata = aligned["img_meta"]
    assert crs == rasterio.crs.CRS.from_string("EPSG:32628")
    assert transform == GRID.transform
    assert shape == GRID.shape
    assert dtypes == ("float32",) * 5
    assert np.isnan(nodata)
    lcrs, ltransform, lshape, ldtypes, lnodata = aligned["lab_meta"]
    assert (lcrs, ltransform, lshape) == (crs, transform, shape)
    assert ldtypes == ("uint8",)
    assert lnodata == 255
    assert aligned["compression"][0].value.lower() == "zstd"
    assert aligned["compression"][1].value.lower() == "zstd"
    assert aligned["tiled"] == (True, True)


def test_metadata_is_kept(aligned: dict) -> None:
    assert aligned["descriptions"] == ("B02", "B03", "B04", "B08", "B11")
    assert aligned["img_tags"]["source"] == "test"
    assert aligned["img_tags"]["dates"] == "2024-01-01"
    assert aligned["lab_tags"]["version"] == "v200"
    assert json.loads(aligned["lab_tags"]["classes"]) == ["tree", "built_up", "water"]
    assert aligned["colormap"][WATER][:3] == (0, 100, 200)
    assert aligned["colormap"][255][3] == 0
    assert aligned["colorinterp"] == (ColorInterp.palette,)


def test_labels_carry_their_class_names_for_qgis_and_gdal(tmp_path: Path, raw: dict) -> None:
    _, out_labels = run(tmp_path, [raw["b10"], raw["b20"]], raw["labels"], threads=1)
    style = ET.parse(out_labels.with_suffix(".qml")).getroot()
    entries = style.findall(".//paletteEntry")
    assert [e.get("label") for e in entries] == [c["name"] for c in CLASSES]
    assert [int(e.get("value")) for e in entries] == list(range(len(CLASSES)))
    pam = (out_labels.parent / f"{out_labels.name}.aux.xml").read_text()
    assert all(f"<Category>{c['name']}</Category>" in pam for c in CLASSES)


def test_10m_bands_are_copied_with_their_scale_and_offset(aligned: dict) -> None:
    image, dn10 = aligned["image"], aligned["dn10"]
    window = dn10[:, MARGIN : MARGIN + GRID.height, MARGIN : MARGIN + GRID.width]
    expected = window * np.array(SCALES)[:, None, None] + np.array(OFFSETS)[:, None, None]
    expected = np.where(window == 0, np.nan, expected).astype(np.float32)
    np.testing.assert_allclose(image[:4], expected, rtol=1e-6, equal_nan=True)
    # band 4 has its own scale 2e-4 and offset -0.05
    assert np.nanmax(image[3]) > 0.5 > np.nanmax(image[0])


def test_20m_band_keeps_its_values_on_the_10m_grid(aligned: dict) -> None:
    b11, dn20 = aligned["image"][4], aligned["dn20"][0]
    rows = (np.arange(GRID.height) + MARGIN) // 2
    cols = (np.arange(GRID.width) + MARGIN) // 2
    window = dn20[np.ix_(rows, cols)]
    expected = np.where(window == 0, np.nan, window * 1e-4 - 0.1).astype(np.float32)
    np.testing.assert_allclose(b11, expected, rtol=1e-6, equal_nan=True)
    # each 20 m pixel becomes 2 x 2 identical 10 m pixels (the grid starts on a 20 m edge)
    assert np.array_equal(b11[0:2, 0:2], np.full((2, 2), b11[0, 0]))


def test_nodata_is_nan_and_ignored(aligned: dict) -> None:
    image, labels = aligned["image"], aligned["labels"]
    corner = np.zeros(GRID.shape, dtype=bool)
    corner[-NODATA_PX:, -NODATA_PX:] = True
    assert np.isnan(image[:, corner]).all()
    assert np.isfinite(image[:, ~corner]).all()
    assert (labels[corner] == 255).all()


def pixel_lonlat() -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(GRID.width) + 0.5, np.arange(GRID.height) + 0.5)
    xs, ys = GRID.transform @ (cols.ravel(), rows.ravel())
    lon, lat = warp_transform(GRID.crs, "EPSG:4326", xs, ys)
    return np.reshape(lon, GRID.shape), np.reshape(lat, GRID.shape)


def test_label_features_land_within_one_pixel(aligned: dict) -> None:
    labels = aligned["labels"]
    lon, lat = pixel_lonlat()
    # one 10 m pixel in degrees at this latitude
    dlat = 10 / 110_600
    dlon = 10 / (111_320 * math.cos(math.radians(BBOX[1])))
    w, s, e, n = WATER_SQUARE
    inner = (lon > w + dlon) & (lon < e - dlon) & (lat > s + dlat) & (lat < n - dlat)
    outer = (lon > w - dlon) & (lon < e + dlon) & (lat > s - dlat) & (lat < n + dlat)
    assert inner.sum() > 100
    assert (labels[inner] == WATER).all()
    assert not (labels[~outer] == WATER).any()
    a, b = BUILT_STRIP
    inner = (lon > a + dlon) & (lon < b - dlon)
    outer = (lon > a - dlon) & (lon < b + dlon)
    assert inner.sum() > 100
    assert (labels[inner & (labels != 255)] == BUILT).all()
    assert not (labels[~outer] == BUILT).any()
    w, s, e, n = IGNORED_SQUARE
    inner = (lon > w + dlon) & (lon < e - dlon) & (lat > s + dlat) & (lat < n - dlat)
    assert inner.sum() > 20
    assert (labels[inner] == 255).all()
    # everything else is tree
    assert ((labels == TREE) | (labels == 255) | (labels == WATER) | (labels == BUILT)).all()
    assert (labels == TREE).mean() > 0.5


def test_mode_resampling_lands_features_too(tmp_path: Path, raw: dict) -> None:
    _, out_labels = run(tmp_path, [raw["b10"]], raw["labels"], label_resampling="mode")
    with rasterio.open(out_labels) as lab:
        labels = lab.read(1)
    lon, lat = pixel_lonlat()
    dlat, dlon = 10 / 110_600, 10 / (111_320 * math.cos(math.radians(BBOX[1])))
    w, s, e, n = WATER_SQUARE
    inner = (lon > w + dlon) & (lon < e - dlon) & (lat > s + dlat) & (lat < n - dlat)
    assert (labels[inner] == WATER).all()


def test_imagery_in_another_crs_is_warped_bilinear(tmp_path: Path, raw: dict) -> None:
    path = tmp_path / "geo.tif"
    west, north = BBOX[0] - 0.002, BBOX[3] + 0.002
    res = 1 / 9000
    size = int(0.014 / res)
    profile = {
        "driver": "GTiff",
        "crs": "EPSG:4326",
        "transform": Affine(res, 0, west, 0, -res, north),
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint16",
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, size, size), 3000, dtype=np.uint16))
        dst.scales, dst.offsets = (1e-4,), (-0.1,)
    assert choose_resampling("EPSG:4326", profile["transform"], GRID) == Resampling.bilinear
    out_image, _ = run(tmp_path, path, raw["labels"])
    with rasterio.open(out_image) as img:
        band = img.read(1)
        assert img.transform == GRID.transform
    np.testing.assert_allclose(band, 0.2, rtol=1e-5)


def test_choose_resampling() -> None:
    t = GRID.transform
    assert choose_resampling(GRID.crs, t, GRID) == Resampling.nearest
    coarse = Affine(20, 0, t.c - 120, 0, -20, t.f + 60)
    assert choose_resampling(GRID.crs, coarse, GRID) == Resampling.nearest
    shifted = Affine(20, 0, t.c - 115, 0, -20, t.f + 60)
    assert choose_resampling(GRID.crs, shifted, GRID) == Resampling.bilinear
    fine = Affine(5, 0, t.c, 0, -5, t.f)
    assert choose_resampling(GRID.crs, fine, GRID) == Resampling.average


# --- bad inputs -------------------------------------------------------------------------


def test_corrupt_geotiff(tmp_path: Path, raw: dict) -> None:
    bad = tmp_path / "imagery.tif"
    bad.write_bytes(b"II*\x00this is not a GeoTIFF" * 10)
    with pytest.raises(DataError, match=r"raw imagery of area 'testarea'.*corrupt"):
        run(tmp_path, bad, raw["labels"])
    assert_no_outputs(tmp_path)


def test_truncated_geotiff_fails_while_warping(tmp_path: Path, raw: dict) -> None:
    # a COG has its header first: it opens, and the missing tiles fail during the warp
    cog, bad = tmp_path / "cog.tif", tmp_path / "truncated.tif"
    rio_copy(raw["b10"], cog, driver="COG", compress="deflate", blocksize=64, overviews="none")
    data = cog.read_bytes()
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with rasterio.open(bad) as src:
        assert src.count == 4
    with pytest.raises(DataError, match=r"Area 'testarea': cannot read .*truncated.tif.*corrupt"):
        run(tmp_path, bad, raw["labels"])
    assert_no_outputs(tmp_path)


def test_labels_elsewhere_do_not_overlap(tmp_path: Path, raw: dict) -> None:
    far = tmp_path / "far_labels.tif"
    write_labels(far, shift_deg=1.0)
    with pytest.raises(DataError, match=r"Area 'testarea'.*far_labels.tif.*does not overlap"):
        run(tmp_path, raw["b10"], far)
    assert_no_outputs(tmp_path)


def test_imagery_and_labels_that_miss_each_other(tmp_path: Path, raw: dict) -> None:
    # labels cover only the west part of the area, imagery only the east part
    west_labels = tmp_path / "west.tif"
    with rasterio.open(raw["labels"]) as src:
        profile, codes = src.profile, src.read(1)
        cut = round((BBOX[0] + 0.004 - src.transform.c) / PIX_DEG)
    profile.update(width=cut)
    with rasterio.open(west_labels, "w", **profile) as dst:
        dst.write(codes[:, :cut], 1)
    east = tmp_path / "east.tif"
    with rasterio.open(raw["b10"]) as src:
        profile, dn = src.profile, src.read()
        scales, offsets = src.scales, src.offsets
    start = dn.shape[2] - 30
    profile.update(width=30, transform=profile["transform"] @ Affine.translation(start, 0))
    with rasterio.open(east, "w", **profile) as dst:
        dst.write(dn[:, :, start:])
        dst.scales, dst.offsets = scales, offsets
    with pytest.raises(DataError, match=r"testarea.*do not overlap each other"):
        run(tmp_path, east, west_labels)
    assert_no_outputs(tmp_path)


def test_all_nodata_area(tmp_path: Path, raw: dict) -> None:
    empty = tmp_path / "empty.tif"
    with rasterio.open(raw["b10"]) as src:
        profile, shape = src.profile, (src.count, src.height, src.width)
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(np.zeros(shape, dtype=np.uint16))
    with pytest.raises(DataError, match=r"Area 'testarea'.*all nodata.*acquire_imagery"):
        run(tmp_path, empty, raw["labels"])
    assert_no_outputs(tmp_path)


def test_label_code_missing_from_class_map(tmp_path: Path, raw: dict) -> None:
    odd = tmp_path / "odd_labels.tif"
    write_labels(odd, extra_code=42)
    with pytest.raises(DataError, match=r"testarea.*odd_labels.tif.*\[42\].*not in the class map"):
        run(tmp_path, raw["b10"], odd)
    assert_no_outputs(tmp_path)


def test_unknown_label_resampling(tmp_path: Path, raw: dict) -> None:
    with pytest.raises(ConfigError, match="label_resampling"):
        run(tmp_path, raw["b10"], raw["labels"], label_resampling="bilinear")
    assert_no_outputs(tmp_path)


def test_imagery_alone_of_an_area_without_labels(tmp_path: Path, raw: dict) -> None:
    """align_image writes the image align_area writes, and nothing else."""
    image, _ = run(tmp_path, [raw["b10"], raw["b20"]], raw["labels"])
    alone = tmp_path / "alone" / "image.tif"
    grid = align_image("testarea", BBOX, [raw["b10"], raw["b20"]], alone, resolution=10, crs=None)
    assert grid == GRID
    with rasterio.open(image) as ref, rasterio.open(alone) as ds:
        assert (ds.crs, ds.transform, ds.shape) == (ref.crs, ref.transform, ref.shape)
        assert ds.descriptions == ref.descriptions and np.isnan(ds.nodata)
        np.testing.assert_array_equal(ds.read(), ref.read())  # NaN where the image has none
    assert sorted(p.name for p in alone.parent.iterdir()) == ["image.tif"]


def test_imagery_alone_that_misses_the_area(tmp_path: Path, raw: dict) -> None:
    elsewhere = (10.0, 50.0, 10.01, 50.01)
    with pytest.raises(DataError, match=r"Area 'testarea'.*does not overlap"):
        align_image("testarea", elsewhere, raw["b10"], tmp_path / "out" / "image.tif",
                    resolution=10, crs=None)  # fmt: skip
    assert_no_outputs(tmp_path)


def test_image_chips_without_masks_are_aligned_alone(tmp_path: Path) -> None:
    """A chips area without labels: its mosaic, its chips listed in the image's tags."""
    for i in range(3):
        path = tmp_path / "chips" / "survey" / "images" / f"c{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            path, "w", driver="PNG", width=8, height=8, count=1, dtype="uint8"
        ) as dst:
            dst.write(np.full((1, 8, 8), 10 * (i + 1), np.uint8))
    raw_image, out = tmp_path / "raw.tif", tmp_path / "aligned" / "image.tif"
    root = str(tmp_path / "chips" / "{area}" / "images" / "{id}.png")
    acquire_imagery("survey", None, "chips", window="all", root=root, bands=["gray"],
                    scale=0.01, offset=0.0, out=raw_image)  # fmt: skip
    align_image("survey", None, raw_image, out, resolution=10, crs=None, window="all")
    with rasterio.open(out) as ds:
        assert ds.crs is None and (ds.height, ds.width) == (16, 16)  # 2 x 2 cells, one empty
        assert list(json.loads(ds.tags()["chips"])) == ["c0", "c1", "c2"]
        assert json.loads(ds.tags()["chip_size"]) == [8, 8]
        np.testing.assert_allclose(ds.read(1)[8:, :8], 0.3)  # c2, row 1, column 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["image.tif"]
