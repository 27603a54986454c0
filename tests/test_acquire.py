"""Acquisition: WorldCover windows across tiles, and the cloud-masked Sentinel-2 composite.

Fixtures are tiny rasters with real CRSs written by code: WorldCover-layout tiles on
the real 1/12000 degree grid, and a static STAC catalog of band GeoTIFFs (10 m and
20 m, UTM 28N, pixel edges on 60 m) in the Earth Search layout.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from http_server import serve
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import area_grid
from landcover.sources import acquire_imagery, acquire_labels
from landcover.sources import windows as acq
from landcover.sources.composite import (
    Acquisition,
    boa_offset,
    clear_mask,
    encode_reflectance,
    median_composite,
    mosaic_first,
    select_acquisitions,
    to_reflectance,
)
from landcover.sources.sentinel2 import ASSET_KEYS
from landcover.sources.worldcover import worldcover_path

# --------------------------------------------------------------------------- WorldCover

PX = 12000  # WorldCover pixels per degree
BORDER_BBOX = (-16.51, 14.995, -16.49, 15.005)  # straddles 15 N: tiles N12W018 and N15W018
SOUTH_CODES = np.array([10, 20, 30], dtype=np.uint8)
NORTH_CODES = np.array([40, 50, 80], dtype=np.uint8)
COLOURS = {10: (0, 100, 0, 255), 20: (255, 187, 34, 255), 80: (0, 100, 200, 255)}


def pattern(codes: np.ndarray, gcol: np.ndarray, grow: np.ndarray) -> np.ndarray:
    """Codes that depend on the global pixel position, so that a shift shows."""
    return codes[(gcol + 2 * grow) % len(codes)]


def write_tile(path: Path, west: float, north: float, width: int, height: int, codes) -> None:
    """A sub-extent of a WorldCover tile on the real pixel grid, with a colour table."""
    col0, row0 = round((west + 180) * PX), round((90 - north) * PX)
    gcol, grow = np.meshgrid(col0 + np.arange(width), row0 + np.arange(height))
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "crs": "EPSG:4326",
        "transform": Affine(1 / PX, 0, col0 / PX - 180, 0, -1 / PX, 90 - row0 / PX),
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write_colormap(1, COLOURS)
        dst.write(pattern(codes, gcol, grow), 1)


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    """Two WorldCover tiles meeting at 15 N, each covering lon -16.52..-16.48."""
    root = tmp_path / "bucket"
    south = Path(worldcover_path(root, "v200", "N12W018"))
    north = Path(worldcover_path(root, "v200", "N15W018"))
    write_tile(south, -16.52, 15.0, 480, 120, SOUTH_CODES)  # lat 14.99..15.00
    write_tile(north, -16.52, 15.01, 480, 120, NORTH_CODES)  # lat 15.00..15.01
    return root


def expected_codes(transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(shape)
    gcol = np.rint((transform.c + 180) * PX).astype(int) + cols
    grow = np.rint((90 - transform.f) * PX).astype(int) + rows
    north = (90 - (grow + 0.5) / PX) > 15
    return np.where(
        north, pattern(NORTH_CODES, gcol, grow), pattern(SOUTH_CODES, gcol, grow)
    ).astype(np.uint8)


def test_worldcover_path_layout() -> None:
    assert worldcover_path("https://b.example", "v100", "S03E006") == (
        "https://b.example/v100/2020/map/ESA_WorldCover_10m_2020_v100_S03E006_Map.tif"
    )
    with pytest.raises(ConfigError, match="v300"):
        worldcover_path("x", "v300", "N00E000")


def test_snap_window_ignores_float_noise_of_transforms() -> None:
    # a real WorldCover crop whose origin is 4e-6 px off the grid (float noise)
    transform = Affine(1 / PX, 0, 87524.000004 / PX, 0, -1 / PX, 20541 / PX)
    window = acq.snap_window((7.38, 1.60, 7.42, 1.64), transform, margin=2)
    assert (window.col_off, window.row_off, window.width, window.height) == (1034, 859, 484, 484)


def test_labels_mosaic_across_tile_border(bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw" / "delta" / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "demo", root=bucket, version="v200", out=out)
    with rasterio.open(out) as ds:
        codes, transform = ds.read(1), ds.transform
        assert ds.crs.to_epsg() == 4326
        assert ds.dtypes[0] == "uint8"
        assert ds.nodata == 0
    # aligned to the tiles' pixel grid
    assert transform.a == pytest.approx(1 / PX) and transform.e == pytest.approx(-1 / PX)
    assert (transform.c + 180) * PX == pytest.approx(round((transform.c + 180) * PX), abs=1e-6)
    assert (90 - transform.f) * PX == pytest.approx(round((90 - transform.f) * PX), abs=1e-6)
    # the bbox plus 2 px on each side, not the tiles
    assert codes.shape == (round(0.01 * PX) + 4, round(0.02 * PX) + 4)
    assert transform.c == pytest.approx(BORDER_BBOX[0] - 2 / PX)
    assert transform.f == pytest.approx(BORDER_BBOX[3] + 2 / PX)
    np.testing.assert_array_equal(codes, expected_codes(transform, codes.shape))
    # both sides of the border are there
    assert set(np.unique(codes[:10])) == set(NORTH_CODES)
    assert set(np.unique(codes[-10:])) == set(SOUTH_CODES)


def test_labels_keep_colour_table_and_provenance(bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "worldcover", root=bucket, version="v200", out=out)
    with rasterio.open(out) as ds:
        cmap = ds.colormap(1)
        tags = ds.tags()
    assert cmap[10] == COLOURS[10] and cmap[80] == COLOURS[80]
    assert tags["doi"] == "10.5281/zenodo.7254221"
    assert tags["version"] == "v200"
    assert "CC BY 4.0" in tags["licence"]
    sources = json.loads(tags["source"])
    assert [Path(s).name for s in sources] == [
        "ESA_WorldCover_10m_2021_v200_N12W018_Map.tif",
        "ESA_WorldCover_10m_2021_v200_N15W018_Map.tif",
    ]


def test_labels_skip_missing_tile(bucket: Path, tmp_path: Path, caplog) -> None:
    Path(worldcover_path(bucket, "v200", "N15W018")).unlink()
    out = tmp_path / "labels.tif"
    with caplog.at_level(logging.WARNING):
        acquire_labels("delta", BORDER_BBOX, "demo", root=bucket, version="v200", out=out)
    assert "N15W018" in caplog.text
    with rasterio.open(out) as ds:
        codes = ds.read(1)
    assert (codes[:62] == 0).all()  # north of 15 N (0.005 deg + 2 px): no tile, nodata
    assert (codes[62:] != 0).all()
    assert set(np.unique(codes[-10:])) == set(SOUTH_CODES)


def test_labels_all_tiles_missing(tmp_path: Path) -> None:
    out = tmp_path / "labels.tif"
    with pytest.raises(SourceError, match=r"Area 'delta'.*N15W018_Map\.tif.*Fix"):
        acquire_labels(
            "delta", BORDER_BBOX, "worldcover", root=tmp_path / "nothing", version="v200", out=out
        )
    assert not out.exists()


def test_labels_corrupt_tile(bucket: Path, tmp_path: Path) -> None:
    corrupt = Path(worldcover_path(bucket, "v200", "N15W018"))
    corrupt.write_bytes(b"II*\x00 this is not a tiff" * 10)
    out = tmp_path / "labels.tif"
    with pytest.raises(DataError, match=r"N15W018_Map\.tif"):
        acquire_labels("delta", BORDER_BBOX, "demo", root=bucket, version="v200", out=out)
    assert not out.exists()
    assert list(tmp_path.glob("*.tif")) == []  # no temporary left either


@pytest.fixture
def http_root(bucket: Path, monkeypatch):
    """The bucket served on 127.0.0.1 (tests/http_server.py: byte ranges, as S3)."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    with serve(bucket) as server:
        yield server.url()


def test_labels_over_http_skip_404(bucket: Path, http_root: str, tmp_path: Path) -> None:
    Path(worldcover_path(bucket, "v200", "N15W018")).unlink()
    out = tmp_path / "labels.tif"
    acquire_labels("delta", BORDER_BBOX, "worldcover", root=http_root, version="v200", out=out)
    with rasterio.open(out) as ds:
        codes, tags = ds.read(1), ds.tags()
    assert json.loads(tags["source"]) == [worldcover_path(http_root, "v200", "N12W018")]
    assert set(np.unique(codes[-10:])) == set(SOUTH_CODES)


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


# --------------------------------------------------------------------------- Sentinel-2

S2_BBOX = (-16.50, 15.00, -16.49, 15.01)
S2_CRS = "EPSG:32628"
GRID = area_grid(S2_BBOX, 10)
PAD = 120  # metres of fixture raster beyond the area grid (a multiple of 60)
LEFT, BOTTOM, RIGHT, TOP = GRID.bounds
CLOUD = (LEFT + 200, TOP - 400, LEFT + 400, TOP - 200)  # cloudy in one date only
OVERCAST = (LEFT + 600, TOP - 400, LEFT + 800, TOP - 200)  # cloudy in every date
B02_REFL = {"d1": 0.01, "d2": 0.02, "d3": 0.03}


def in_box(x: np.ndarray, y: np.ndarray, b: tuple[float, float, float, float]) -> np.ndarray:
    return (x >= b[0]) & (x < b[2]) & (y >= b[1]) & (y < b[3])


def b05_refl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A pattern on the 20 m pixel grid (x, y: pixel centres)."""
    return 0.1 + 0.01 * ((np.floor(x / 20) + 2 * np.floor(y / 20)) % 5)


def write_band(path: Path, res: int, values) -> None:
    """A uint16 band on the fixture extent at ``res`` m; ``values(x, y)`` at pixel centres."""
    left, top = LEFT - PAD, TOP + PAD
    width = round((RIGHT + PAD - left) / res)
    height = round((top - (BOTTOM - PAD)) / res)
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    x, y = left + (cols + 0.5) * res, top - (rows + 0.5) * res
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint16",
        nodata=0,
        crs=S2_CRS,
        transform=Affine(res, 0, left, 0, -res, top),
        tiled=True,
        blockxsize=64,
        blockysize=64,
    ) as dst:
        dst.write(np.asarray(values(x, y), dtype=np.uint16), 1)


def make_item(root: Path, item_id: str, day: str, cloud: float, **props) -> pystac.Item:
    """An item with B02 (10 m), B05 and SCL (20 m) band files beside the catalog."""
    applied = props.get("earthsearch:boa_offset_applied", False)
    add = 0 if applied else 1000
    name = item_id.split("_")[0]
    folder = root / "sentinel-s2-l2a-cogs" / item_id
    b02 = B02_REFL.get(name, 0.5)

    def b02_dn(x, y):
        dn = np.full(x.shape, round(b02 * 10000) + add)
        if name == "d3":
            dn[in_box(x, y, CLOUD)] = 9000  # bright cloud top
        return dn

    def scl(x, y):
        out = np.full(x.shape, 4)
        out[in_box(x, y, OVERCAST)] = 8
        if name == "d3":
            out[in_box(x, y, CLOUD)] = 9
        return out

    write_band(folder / "B02.tif", 10, b02_dn)
    write_band(folder / "B05.tif", 20, lambda x, y: np.rint(b05_refl(x, y) * 10000) + add)
    write_band(folder / "SCL.tif", 20, scl)
    ll = transform_bounds(S2_CRS, "EPSG:4326", LEFT - PAD, BOTTOM - PAD, RIGHT + PAD, TOP + PAD)
    item = pystac.Item(
        id=item_id,
        geometry=mapping(box(*ll)),
        bbox=list(ll),
        datetime=dt.datetime.fromisoformat(f"{day}T11:30:00+00:00"),
        properties={
            "eo:cloud_cover": cloud,
            "platform": "sentinel-2a",
            "s2:processing_baseline": "05.10",
            "earthsearch:boa_offset_applied": False,
            "proj:code": S2_CRS,
            **props,
        },
    )
    # the asset says offset -0.1 even where it was already applied (as Earth Search's did)
    reflectance = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
    for band in ("B02", "B05", "SCL"):
        extra = {"raster:bands": reflectance if band != "SCL" else [{"nodata": 0}]}
        item.add_asset(
            ASSET_KEYS[band],
            pystac.Asset(
                href=str(folder / f"{band}.tif"),
                media_type=pystac.MediaType.COG,
                extra_fields=extra,
            ),
        )
    return item


def build_catalog(root: Path, items: list[pystac.Item]) -> None:
    catalog = pystac.Catalog(id="demo", description="test bucket")
    collection = pystac.Collection(
        id="sentinel-2-l2a",
        description="test",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(S2_BBOX)]),
            pystac.TemporalExtent([[dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), None]]),
        ),
    )
    catalog.add_child(collection)
    collection.add_items(items)
    catalog.normalize_hrefs(str(root / "stac"))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)


def fixture_items(root: Path) -> list[pystac.Item]:
    return [
        # offset already removed: DN = 10000 * reflectance
        make_item(root, "d1_applied", "2024-01-05", 10, **{"earthsearch:boa_offset_applied": True}),
        make_item(root, "d2", "2024-01-15", 20),
        make_item(root, "d3_cloudy", "2024-01-25", 30),
        make_item(root, "d4_late", "2024-05-01", 0),  # after the date range
        make_item(root, "d5_overcast", "2024-02-01", 95),  # above max_cloud
    ]


@pytest.fixture(scope="module")
def stac_bucket(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("s2bucket")
    build_catalog(root, fixture_items(root))
    return root


IMAGERY = {
    "collection": "sentinel-2-l2a",
    "dates": ["2024-01-01", "2024-03-31"],
    "max_cloud": 70,
    "max_items": 4,
    "bands": ["B02", "B05"],
    "resolution": 10,
}


@pytest.fixture(scope="module")
def composite(stac_bucket: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "imagery.tif"
    acquire_imagery("delta", S2_BBOX, "demo", root=stac_bucket, out=out, **IMAGERY)
    return out


def centres() -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(GRID.width), np.arange(GRID.height))
    return LEFT + (cols + 0.5) * 10, TOP - (rows + 0.5) * 10


def test_composite_grid_and_encoding(composite: Path) -> None:
    with rasterio.open(composite) as ds:
        assert ds.crs.to_string() == S2_CRS
        assert ds.transform == GRID.transform
        assert (ds.height, ds.width) == GRID.shape
        assert ds.dtypes == ("uint16", "uint16")
        assert ds.nodata == 0
        assert ds.descriptions == ("B02", "B05")
        assert ds.scales == (0.0001, 0.0001)
        assert ds.offsets == (-0.1, -0.1)
        tags = ds.tags()
    assert json.loads(tags["items"]) == ["d1_applied", "d2", "d3_cloudy"]
    assert json.loads(tags["dates"]) == ["2024-01-05", "2024-01-15", "2024-01-25"]
    assert "Sentinel_Data_Legal_Notice" in tags["licence"]
    assert "sentinel-2-l2a" in tags["source"]


def test_composite_masks_clouds_and_takes_median(composite: Path) -> None:
    x, y = centres()
    with rasterio.open(composite) as ds:
        b02 = ds.read(1)
        refl = b02 * ds.scales[0] + ds.offsets[0]
    cloud, overcast = in_box(x, y, CLOUD), in_box(x, y, OVERCAST)
    clear = ~cloud & ~overcast
    # median of 0.01 (offset already applied), 0.02 and 0.03: the offset rule held
    assert (b02[clear] == 1200).all()
    np.testing.assert_allclose(refl[clear], 0.02, atol=1e-6)
    # d3's cloud (DN 9000) never reaches the output: median of d1 and d2
    assert cloud.sum() == 400 and (b02[cloud] == 1150).all()
    # cloudy in every date: nodata
    assert overcast.sum() == 400 and (b02[overcast] == 0).all()


def test_composite_20m_band_upsampled_exactly(composite: Path) -> None:
    x, y = centres()
    with rasterio.open(composite) as ds:
        b05 = ds.read(2)
    expected = np.rint(b05_refl(x, y) * 10000).astype(np.uint16) + 1000
    valid = ~in_box(x, y, OVERCAST)
    np.testing.assert_array_equal(b05[valid], expected[valid])
    # each 20 m pixel became 2 x 2 equal 10 m pixels
    assert (b05[::2, ::2] == b05[1::2, 1::2]).all()


def test_composite_keeps_clearest(stac_bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "imagery.tif"
    acquire_imagery(
        "delta", S2_BBOX, "demo", root=stac_bucket, out=out, **(IMAGERY | {"max_items": 2})
    )
    with rasterio.open(out) as ds:
        b02 = ds.read(1)
        items = json.loads(ds.tags()["items"])
    assert items == ["d1_applied", "d2"]
    x, y = centres()
    assert (b02[in_box(x, y, CLOUD)] == 1150).all()  # median of 0.01 and 0.02


def test_no_items_is_a_clear_error(stac_bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "imagery.tif"
    config = IMAGERY | {"dates": ["2023-01-01", "2023-02-01"]}
    with pytest.raises(SourceError, match=r"Area 'delta'.*widen imagery\.dates.*max_cloud"):
        acquire_imagery("delta", S2_BBOX, "demo", root=stac_bucket, out=out, **config)
    assert not out.exists()


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"stac/catalog\.json"):
        acquire_imagery("delta", S2_BBOX, "demo", root=tmp_path, out=tmp_path / "i.tif", **IMAGERY)


def test_all_cloudy_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    item = make_item(root, "d9", "2024-01-10", 5)
    write_band(root / "sentinel-s2-l2a-cogs" / "d9" / "SCL.tif", 20, lambda x, y: x * 0 + 9)
    build_catalog(root, [item])
    out = tmp_path / "imagery.tif"
    with pytest.raises(DataError, match=r"Area 'delta'.*no clear pixel"):
        acquire_imagery("delta", S2_BBOX, "demo", root=root, out=out, **IMAGERY)
    assert not out.exists()


def test_corrupt_asset_names_the_href(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    item = make_item(root, "d2", "2024-01-10", 5)
    build_catalog(root, [item])
    bad = root / "sentinel-s2-l2a-cogs" / "d2" / "B05.tif"
    bad.write_bytes(b"not a tiff at all")
    out = tmp_path / "imagery.tif"
    with pytest.raises(DataError, match=r"d2/B05\.tif"):
        acquire_imagery("delta", S2_BBOX, "demo", root=root, out=out, **IMAGERY)
    assert not out.exists()


def test_unknown_band_is_a_config_error(stac_bucket: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="B01"):
        acquire_imagery(
            "delta",
            S2_BBOX,
            "demo",
            root=stac_bucket,
            out=tmp_path / "i.tif",
            **(IMAGERY | {"bands": ["B01"]}),
        )


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


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": False}, -0.1),
        ({"s2:processing_baseline": "04.00"}, -0.1),
        ({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}, 0.0),
        ({"s2:processing_baseline": "03.01", "earthsearch:boa_offset_applied": False}, 0.0),
        ({"s2:processing_baseline": "02.14"}, 0.0),
        ({"datetime": "2022-01-25T10:00:00Z"}, -0.1),  # no baseline: the date decides
        ({"datetime": "2021-12-31T10:00:00Z"}, 0.0),
        ({"datetime": "2023-06-01T10:00:00Z", "earthsearch:boa_offset_applied": True}, 0.0),
    ],
)
def test_boa_offset_rule(properties: dict, expected: float) -> None:
    assert boa_offset(properties) == expected


def test_clear_mask_drops_scl_classes() -> None:
    scl = np.arange(12, dtype=np.uint8)
    assert clear_mask(scl).tolist() == [
        False, False, True, False, True, True, True, True, False, False, False, False
    ]  # fmt: skip


def test_to_reflectance_masks_nodata_and_clouds() -> None:
    dn = np.array([[0, 1000, 1500, 2000]], dtype=np.uint16)
    clear = np.array([[True, True, True, False]])
    refl = to_reflectance(dn, 1e-4, -0.1, clear)
    assert refl.dtype == np.float32
    np.testing.assert_allclose(refl, [[np.nan, 0.0, 0.05, np.nan]], atol=1e-7)


def test_median_composite_ignores_nan() -> None:
    nan = np.nan
    stack = np.array([[[0.1, nan, nan]], [[0.3, 0.2, nan]], [[0.2, 0.4, nan]]])
    np.testing.assert_allclose(median_composite(stack), [[0.2, 0.3, nan]])


def test_encode_reflectance_offsets_clips_and_marks_nodata() -> None:
    refl = np.array([0.0, 0.1234, -0.5, 10.0, np.nan], dtype=np.float32)
    assert encode_reflectance(refl).tolist() == [1000, 2234, 1, 65535, 0]


def test_mosaic_first_fills_gaps_in_order() -> None:
    a = np.array([1.0, np.nan, np.nan])
    b = np.array([5.0, 2.0, np.nan])
    np.testing.assert_array_equal(mosaic_first([a, b]), [1.0, 2.0, np.nan])


def _item(item_id: str, day: str, cloud: float, platform: str = "sentinel-2a") -> pystac.Item:
    return pystac.Item(
        id=item_id,
        geometry=mapping(box(*S2_BBOX)),
        bbox=list(S2_BBOX),
        datetime=dt.datetime.fromisoformat(f"{day}T11:00:00+00:00"),
        properties={"eo:cloud_cover": cloud, "platform": platform},
    )


def test_select_acquisitions_filters_groups_and_ranks() -> None:
    items = [
        _item("a1", "2024-01-05", 40),
        _item("a2", "2024-01-05", 20),  # same overpass, neighbouring tile
        _item("b", "2024-01-10", 10),
        _item("c", "2024-01-15", 50),
        _item("late", "2024-04-02", 0),
        _item("cloudy", "2024-01-20", 90),
    ]
    far = _item("far", "2024-01-07", 0)
    far.geometry, far.bbox = mapping(box(10, 10, 11, 11)), [10, 10, 11, 11]
    span = (dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    chosen = select_acquisitions([*items, far], S2_BBOX, span, 70, 2)
    assert [a.date.isoformat() for a in chosen] == ["2024-01-05", "2024-01-10"]
    assert isinstance(chosen[0], Acquisition)
    assert chosen[0].ids == ["a2", "a1"] and chosen[0].cloud_cover == 30
    everything = select_acquisitions([*items, far], S2_BBOX, span, 100, 10)
    assert [a.ids for a in everything] == [["a2", "a1"], ["b"], ["c"], ["cloudy"]]
