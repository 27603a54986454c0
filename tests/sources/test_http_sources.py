"""The remote readers over real HTTP on 127.0.0.1: WorldCover tiles and a STAC API.

A loopback server (tests/http_server.py, through the ``serve`` fixture) serves COGs in
the public layouts and a minimal STAC API; the readers run exactly as they do against the
public servers. The settings of landcover.sources.http are checked too. No reading code
is mocked: GDAL's ``/vsicurl/`` fetches byte ranges, pystac-client searches over HTTP,
and the results are compared with reading the same files locally.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac_client
import pytest
import rasterio
import rasterio.shutil
import requests
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import area_grid
from landcover.sources import acquire_imagery, acquire_labels
from landcover.sources import stac as acq
from landcover.sources.http import HttpSettings, gdal_options
from landcover.sources.sentinel2 import ASSET_KEYS
from landcover.sources.worldcover import worldcover_path

PX = 12000  # WorldCover pixels per degree
CODES = np.array([10, 20, 30, 40, 50, 60, 80, 90, 95], dtype=np.uint8)
COLOURS = {10: (0, 100, 0, 255), 40: (240, 150, 255, 255), 95: (0, 207, 117, 255)}

BIG_TILE = "N12W018"  # a 3072 x 3072 px COG (512 px blocks, overviews) south of 15 N
BIG_WEST, BIG_NORTH, BIG_SIZE = -16.60, 15.0, 3072
SMALL_TILE = "N15W018"  # a small COG just north of 15 N
BORDER_BBOX = (-16.51, 14.995, -16.49, 15.005)  # straddles 15 N: both tiles
# about 100 x 100 px inside one 512 px block of the big tile (block row 1, column 3)
INNER_BBOX = (
    BIG_WEST + 1600 / PX,
    BIG_NORTH - 700 / PX,
    BIG_WEST + 1700 / PX,
    BIG_NORTH - 600 / PX,
)


def write_cog(
    path: Path,
    array: np.ndarray,
    crs: str,
    transform: Affine,
    blocksize: int = 256,
    colormap: dict | None = None,
) -> None:
    """One band as a deflate COG with overviews, as the public buckets publish them."""
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with MemoryFile() as memory, memory.open(**profile) as src:
        src.write(array, 1)
        if colormap:
            src.write_colormap(1, colormap)
        rasterio.shutil.copy(
            src,
            path,
            driver="COG",
            compress="deflate",
            blocksize=blocksize,
            overview_resampling="nearest",
        )


def worldcover_codes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Patches of 16 px with 15 % noise: compresses like real land cover, not to nothing."""
    codes = np.kron(rng.choice(CODES, size=(-(-height // 16), -(-width // 16))), np.ones((16, 16)))
    codes = codes[:height, :width].astype(np.uint8)
    noise = rng.random(codes.shape) < 0.15
    codes[noise] = rng.choice(CODES, size=int(noise.sum()))
    return codes


def tile_transform(west: float, north: float) -> Affine:
    """The transform of a file on the real WorldCover pixel grid."""
    return Affine(1 / PX, 0, round((west + 180) * PX) / PX - 180, 0, -1 / PX, north)


@pytest.fixture(scope="module")
def worldcover_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WorldCover v200 in the public layout: a big tile and a small one meeting at 15 N."""
    root = tmp_path_factory.mktemp("worldcover")
    rng = np.random.default_rng(5)
    big = worldcover_codes(rng, BIG_SIZE, BIG_SIZE)
    write_cog(
        Path(worldcover_path(root, "v200", BIG_TILE)),
        big,
        "EPSG:4326",
        tile_transform(BIG_WEST, BIG_NORTH),
        blocksize=512,
        colormap=COLOURS,
    )
    small = worldcover_codes(rng, 120, 480)  # lat 15.00..15.01, lon -16.52..-16.48
    write_cog(
        Path(worldcover_path(root, "v200", SMALL_TILE)),
        small,
        "EPSG:4326",
        tile_transform(-16.52, 15.01),
        colormap=COLOURS,
    )
    return root


@pytest.fixture
def server(worldcover_root: Path, serve):
    with serve(worldcover_root) as running:
        yield running


def read(path: Path) -> tuple[np.ndarray, dict, dict]:
    with rasterio.open(path) as ds:
        meta = {
            "crs": ds.crs,
            "transform": ds.transform,
            "dtype": ds.dtypes[0],
            "nodata": ds.nodata,
            "count": ds.count,
            "descriptions": ds.descriptions,
            "scales": ds.scales,
            "offsets": ds.offsets,
        }
        try:
            meta["colormap"] = ds.colormap(1)
        except ValueError:
            meta["colormap"] = None
        return ds.read(), meta, ds.tags()


def no_leftovers(folder: Path) -> bool:
    """Neither the output nor a temporary file of it is there."""
    return not any(folder.iterdir()) if folder.exists() else True


# --------------------------------------------------------------------------- WorldCover


def test_worldcover_over_http_equals_local(server, worldcover_root: Path, tmp_path: Path) -> None:
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    acquire_labels(
        "delta", BORDER_BBOX, "worldcover", root=server.url(), version="v200", out=remote
    )
    acquire_labels(
        "delta", BORDER_BBOX, "worldcover", root=str(worldcover_root), version="v200", out=local
    )
    codes, meta, tags = read(remote)
    local_codes, local_meta, local_tags = read(local)
    np.testing.assert_array_equal(codes, local_codes)
    assert meta == local_meta
    assert meta["dtype"] == "uint8" and meta["nodata"] == 0 and meta["crs"].to_epsg() == 4326
    assert meta["colormap"][95] == COLOURS[95]
    # both tiles were read and mosaicked: codes on both sides of 15 N
    assert json.loads(tags["source"]) == [
        worldcover_path(server.url(), "v200", BIG_TILE),
        worldcover_path(server.url(), "v200", SMALL_TILE),
    ]
    assert (codes[0] != 0).all()
    assert tags["doi"] == "10.5281/zenodo.7254221" and tags["version"] == "v200"
    assert "CC BY 4.0" in tags["licence"]
    assert {k: v for k, v in tags.items() if k != "source"} == {
        k: v for k, v in local_tags.items() if k != "source"
    }


def test_worldcover_moves_only_the_window(server, tmp_path: Path) -> None:
    rel = worldcover_path("", "v200", BIG_TILE)
    size = (server.root / rel).stat().st_size
    assert size > 2_000_000  # a large file: the ratio below means something
    acquire_labels(
        "inner", INNER_BBOX, "worldcover", root=server.url(), version="v200", out=tmp_path / "l.tif"
    )
    moved = server.bytes_served(rel)
    assert 0 < moved < 0.1 * size, f"{moved} of {size} bytes moved"
    gets = [(method, rng) for method, path, rng in server.requests if path == rel]
    assert gets and all(rng for method, rng in gets if method == "GET")  # never a whole file
    with rasterio.open(tmp_path / "l.tif") as ds:
        assert ds.shape == (104, 104)  # the bbox (100 px) plus 2 px on each side


@pytest.mark.parametrize(
    ("mode", "method"),
    [("500", None), ("503", None), ("drop", None), ("503", "GET"), ("drop", "GET")],
)
def test_worldcover_transient_failures_are_retried(
    server, worldcover_root: Path, tmp_path: Path, mode: str, method: str | None
) -> None:
    """The first requests fail (the probe's HEAD, or GDAL's range GETs); retries win."""
    expected = tmp_path / "local.tif"
    acquire_labels(
        "delta", BORDER_BBOX, "worldcover", root=str(worldcover_root), version="v200", out=expected
    )
    server.fail(2, mode, method=method)  # type: ignore[arg-type]
    out = tmp_path / "remote.tif"
    acquire_labels("delta", BORDER_BBOX, "worldcover", root=server.url(), version="v200", out=out)
    assert server.failed == 2
    np.testing.assert_array_equal(read(out)[0], read(expected)[0])


@pytest.mark.parametrize("mode", ["500", "503", "drop"])
def test_worldcover_unreachable_is_an_error_naming_the_url(
    server, tmp_path: Path, mode: str
) -> None:
    server.fail(-1, mode)  # type: ignore[arg-type]
    out = tmp_path / "raw" / "labels.tif"
    url = worldcover_path(server.url(), "v200", BIG_TILE)
    with pytest.raises(SourceError, match=rf"{url}.*GDAL_HTTP_MAX_RETRY"):
        acquire_labels(
            "delta", BORDER_BBOX, "worldcover", root=server.url(), version="v200", out=out
        )
    assert no_leftovers(out.parent)


@pytest.mark.parametrize(("mode", "method"), [("503", None), ("drop", "GET")])
def test_worldcover_failing_tile_is_never_skipped(
    server, tmp_path: Path, mode: str, method: str | None
) -> None:
    """Only a 404 means "no tile here"; a tile that keeps failing is an error, not a gap."""
    rel = worldcover_path("", "v200", SMALL_TILE)
    server.fail(-1, mode, prefix=rel, method=method)  # type: ignore[arg-type]
    out = tmp_path / "raw" / "labels.tif"
    with pytest.raises(SourceError, match=rf"{SMALL_TILE}.*{server.url(rel)}"):
        acquire_labels(
            "delta", BORDER_BBOX, "worldcover", root=server.url(), version="v200", out=out
        )
    assert no_leftovers(out.parent)


def test_worldcover_404_is_a_missing_tile(tmp_path: Path, worldcover_root: Path, serve) -> None:
    """Over open ocean there is no tile: HTTP 404 skips it, the other tile is kept."""
    root = tmp_path / "bucket"
    big = Path(worldcover_path(worldcover_root, "v200", BIG_TILE))
    copy = Path(worldcover_path(root, "v200", BIG_TILE))
    copy.parent.mkdir(parents=True)
    copy.write_bytes(big.read_bytes())
    out = tmp_path / "labels.tif"
    with serve(root) as only_south:
        acquire_labels(
            "delta", BORDER_BBOX, "worldcover", root=only_south.url(), version="v200", out=out
        )
        assert ("HEAD", worldcover_path("", "v200", SMALL_TILE), None) in only_south.requests
    codes = read(out)[0][0]
    assert (codes[:60] == 0).all() and (codes[-60:] != 0).all()


def test_worldcover_corrupt_remote_tile_is_a_data_error(tmp_path: Path, serve) -> None:
    """The server answers but the file is no GeoTIFF: a DataError naming the URL."""
    path = Path(worldcover_path(tmp_path / "bucket", "v200", BIG_TILE))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"II*\x00 cut off" * 100)
    out = tmp_path / "raw" / "labels.tif"
    with serve(tmp_path / "bucket") as broken:
        url = worldcover_path(broken.url(), "v200", BIG_TILE)
        with pytest.raises(DataError, match=rf"WorldCover tile {BIG_TILE}.*{url}.*corrupt"):
            acquire_labels(
                "inner", INNER_BBOX, "worldcover", root=broken.url(), version="v200", out=out
            )
    assert not out.parent.exists()


def test_worldcover_server_down(tmp_path: Path, serve) -> None:
    """Nothing listens on the port: the error names the URL."""
    with serve(tmp_path) as gone:
        url = gone.url()
    out = tmp_path / "raw" / "labels.tif"
    with pytest.raises(SourceError, match=rf"Cannot reach WorldCover tile {BIG_TILE}.*{url}"):
        acquire_labels("delta", BORDER_BBOX, "worldcover", root=url, version="v200", out=out)
    assert not out.parent.exists()


# --------------------------------------------------------------------------- Sentinel-2

S2_BBOX = (-16.50, 15.00, -16.48, 15.02)
GRID = area_grid(S2_BBOX, 10)
S2_CRS = GRID.crs
PAD = 240  # metres of band file beyond the area grid (a multiple of 60)
CLOUD_ROWS = slice(40, 80)  # rows of the area grid under a cloud on the second date
DATES = {  # item id -> (day, eo:cloud_cover, B02 reflectance, offset applied in the DN)
    "S2B_28PCB_20240105_0_L2A": ("2024-01-05", 5.0, 0.05, True),
    "S2A_28PCB_20240110_0_L2A": ("2024-01-10", 12.0, 0.07, False),
    "S2B_28PCB_20240115_0_L2A": ("2024-01-15", 8.0, 0.06, False),
    "S2A_28PCB_20240120_0_L2A": ("2024-01-20", 80.0, 0.50, False),  # too cloudy
    "S2B_28PCB_20240420_0_L2A": ("2024-04-20", 0.0, 0.50, False),  # after the dates
}
IMAGERY = {
    "collection": "sentinel-2-l2a",
    "dates": ["2024-01-01", "2024-03-31"],
    "max_cloud": 20,
    "max_items": 4,
    "bands": ["B02", "B05"],
    "resolution": 10,
    "items": None,
    "min_clear": 0.5,
}


def band_file(root: Path, item_id: str, band: str) -> Path:
    """Earth Search layout: sentinel-s2-l2a-cogs/{zone}/{latband}/{square}/{y}/{m}/{id}/{band}."""
    day = dt.date.fromisoformat(DATES[item_id][0])
    return root / "sentinel-s2-l2a-cogs/28/P/CB" / f"{day.year}/{day.month}/{item_id}/{band}.tif"


def write_item_bands(root: Path, item_id: str) -> None:
    _, _, b02, applied = DATES[item_id]
    add = 0 if applied else 1000
    left, bottom, right, top = GRID.bounds
    for band, res in (("B02", 10), ("B05", 20), ("SCL", 20)):
        width = round((right - left + 2 * PAD) / res)
        height = round((top - bottom + 2 * PAD) / res)
        rows, cols = np.indices((height, width))
        if band == "B02":
            values = np.full((height, width), round(b02 * 10000) + add)
        elif band == "B05":
            values = 1000 + 10 * ((rows + cols) % 50) + add  # a pattern on the 20 m grid
        else:
            values = np.full((height, width), 4)  # vegetation
            if item_id.startswith("S2A_28PCB_20240110"):
                grid_rows = (rows * res - PAD) // 10  # area-grid row of the pixel's top
                values[(grid_rows >= CLOUD_ROWS.start) & (grid_rows < CLOUD_ROWS.stop)] = 9
        transform = Affine(res, 0, left - PAD, 0, -res, top + PAD)
        dtype = np.uint8 if band == "SCL" else np.uint16
        write_cog(band_file(root, item_id, band), values.astype(dtype), S2_CRS, transform)


def item_dict(item_id: str, href: callable) -> dict:
    """A STAC item as Earth Search publishes it, asset hrefs made by ``href(path)``."""
    day, cloud, _, applied = DATES[item_id]
    left, bottom, right, top = GRID.bounds
    ll = transform_bounds(S2_CRS, "EPSG:4326", left - PAD, bottom - PAD, right + PAD, top + PAD)
    raster = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "geometry": mapping(box(*ll)),
        "bbox": list(ll),
        "properties": {
            "datetime": f"{day}T11:30:00Z",
            "eo:cloud_cover": cloud,
            "platform": "sentinel-2b" if item_id.startswith("S2B") else "sentinel-2a",
            "s2:processing_baseline": "05.10",
            "earthsearch:boa_offset_applied": applied,
            "proj:code": S2_CRS,
        },
        "links": [],
        "assets": {
            ASSET_KEYS[band]: {
                "href": href(band_file(Path(), item_id, band).as_posix()),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "raster:bands": raster if band != "SCL" else [{"nodata": 0}],
            }
            for band in ("B02", "B05", "SCL")
        },
    }


@pytest.fixture(scope="module")
def s2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s2")
    for item_id in DATES:
        write_item_bands(root, item_id)
    return root


@pytest.fixture
def stac(s2_root: Path, serve):
    """The band COGs and a STAC API; collection 'local-l2a' has the same items with local
    hrefs, so the only difference between the two is HTTP."""
    with serve(s2_root) as running:
        running.add_items("sentinel-2-l2a", [item_dict(i, running.url) for i in DATES])
        local = [item_dict(i, lambda rel: (s2_root / rel).as_uri()) for i in DATES]
        running.add_items("local-l2a", local)
        yield running


def test_stac_search_over_http_equals_local(stac, tmp_path: Path) -> None:
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    acquire_imagery("delta", S2_BBOX, "stac", root=stac.url(), out=remote, **IMAGERY)
    acquire_imagery(
        "delta",
        S2_BBOX,
        "stac",
        root=stac.url(),
        out=local,
        **(IMAGERY | {"collection": "local-l2a"}),
    )
    pixels, meta, tags = read(remote)
    local_pixels, local_meta, _ = read(local)
    np.testing.assert_array_equal(pixels, local_pixels)
    assert meta == local_meta
    assert meta["crs"].to_string() == S2_CRS and meta["transform"] == GRID.transform
    # the API filtered dates and cloud cover; the three clear dates were composited
    assert json.loads(tags["items"]) == list(DATES)[:3]
    assert tags["source"] == f"STAC API {stac.url()}, collection sentinel-2-l2a"
    # the offset rule per item: 0.05 (offset applied), 0.07 and 0.06 -> median 0.06
    b02 = pixels[0] * meta["scales"][0] + meta["offsets"][0]
    np.testing.assert_allclose(b02[: CLOUD_ROWS.start], 0.06, atol=1e-6)
    # under the cloud of the second date: the median of 0.05 and 0.06
    np.testing.assert_allclose(b02[CLOUD_ROWS][:, 5], 0.055, atol=1e-4)
    # band files were read as byte ranges, never whole
    ranged = [r for method, path, r in stac.requests if method == "GET" and path.endswith(".tif")]
    assert ranged and all(ranged)


def test_stac_search_pages(stac, tmp_path: Path, monkeypatch) -> None:
    """The client follows the API's next links (one item per page here)."""
    monkeypatch.setattr(acq, "SEARCH_PAGE_SIZE", 1)
    out = tmp_path / "imagery.tif"
    acquire_imagery("delta", S2_BBOX, "stac", root=stac.url(), out=out, **IMAGERY)
    searches = [r for r in stac.requests if r[1] == "search"]
    assert len(searches) >= 3
    assert json.loads(read(out)[2]["items"]) == list(DATES)[:3]


def test_stac_api_get_search(stac) -> None:
    """The fixture's API also answers GET searches (pystac-client's method="GET")."""
    client = pystac_client.Client.open(stac.url())
    search = client.search(
        method="GET",
        collections=["sentinel-2-l2a"],
        bbox=list(S2_BBOX),
        datetime="2024-01-01/2024-01-31",
        query={"eo:cloud_cover": {"lt": 10}},
        limit=1,
    )
    ids = list(DATES)
    assert [item.id for item in search.items()] == [ids[0], ids[2]]


@pytest.mark.parametrize(
    ("mode", "method", "prefix"),
    [
        ("503", None, ""),  # the landing page
        ("500", "POST", "search"),
        ("drop", "POST", "search"),
        ("drop", "GET", "sentinel-s2-l2a-cogs"),  # band reads
        ("503", None, "sentinel-s2-l2a-cogs"),
    ],
)
def test_stac_transient_failures_are_retried(
    stac, tmp_path: Path, mode: str, method: str | None, prefix: str
) -> None:
    stac.fail(2, mode, prefix=prefix, method=method)  # type: ignore[arg-type]
    out = tmp_path / "imagery.tif"
    acquire_imagery("delta", S2_BBOX, "stac", root=stac.url(), out=out, **IMAGERY)
    assert stac.failed == 2
    assert json.loads(read(out)[2]["items"]) == list(DATES)[:3]


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_stac_api_unreachable(stac, tmp_path: Path, mode: str) -> None:
    stac.fail(-1, mode)  # type: ignore[arg-type]
    out = tmp_path / "raw" / "imagery.tif"
    with pytest.raises(SourceError, match=rf"STAC API search at {stac.url()}.*GDAL_HTTP_MAX"):
        acquire_imagery("delta", S2_BBOX, "stac", root=stac.url(), out=out, **IMAGERY)
    assert no_leftovers(out.parent)


@pytest.mark.parametrize(("mode", "method"), [("503", None), ("drop", "GET")])
def test_stac_asset_unreachable(stac, tmp_path: Path, mode: str, method: str | None) -> None:
    """A band that keeps failing stops the job with its URL; no output is left."""
    item = list(DATES)[2]
    rel = band_file(Path(), item, "B05").as_posix()
    stac.fail(-1, mode, prefix=rel, method=method)  # type: ignore[arg-type]
    out = tmp_path / "raw" / "imagery.tif"
    with pytest.raises(SourceError, match=rf"band B05 of item '{item}'.*{stac.url(rel)}"):
        acquire_imagery("delta", S2_BBOX, "stac", root=stac.url(), out=out, **IMAGERY)
    assert no_leftovers(out.parent)


# --------------------------------------------------------------------------- the fixture


def test_loopback_server_ranges_and_counts(tmp_path: Path, serve) -> None:
    (tmp_path / "f.bin").write_bytes(bytes(range(100)))
    with serve(tmp_path) as server:
        url = server.url("f.bin")
        whole = requests.get(url, timeout=5)
        assert whole.status_code == 200 and whole.content == bytes(range(100))
        part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=5)
        assert part.status_code == 206 and part.content == bytes(range(10, 20))
        assert part.headers["Content-Range"] == "bytes 10-19/100"
        tail = requests.get(url, headers={"Range": "bytes=-5"}, timeout=5)
        assert tail.content == bytes(range(95, 100))
        multi = requests.get(url, headers={"Range": "bytes=0-1,50-51"}, timeout=5)
        assert multi.status_code == 206
        assert multi.headers["Content-Type"].startswith("multipart/byteranges")
        assert b"bytes 0-1/100" in multi.content and b"bytes 50-51/100" in multi.content
        assert requests.get(url, headers={"Range": "bytes=200-"}, timeout=5).status_code == 416
        assert requests.head(url, timeout=5).headers["Content-Length"] == "100"
        assert requests.get(server.url("nope.tif"), timeout=5).status_code == 404
        assert server.bytes_served("f.bin") == 100 + 10 + 5 + len(multi.content)
        server.fail(1, "503", method="GET")
        assert requests.get(url, timeout=5).status_code == 503
        assert requests.get(url, timeout=5).status_code == 200 and server.failed == 1
        server.fail(-1, "drop")
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
        server.heal()
        assert requests.get(server.url(), timeout=5).json()["conformsTo"]


# --------------------------------------------------------------------------- settings


def test_gdal_options_suit_cogs_and_follow_the_environment() -> None:
    options = gdal_options(environ={})
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert options["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert options["GDAL_HTTP_MULTIRANGE"] == "YES"
    assert options["VSI_CACHE"] == "TRUE"
    assert int(options["GDAL_HTTP_MAX_RETRY"]) >= 3
    assert float(options["GDAL_HTTP_RETRY_DELAY"]) > 0
    assert int(options["GDAL_HTTP_TIMEOUT"]) > 0
    env = {"GDAL_HTTP_MAX_RETRY": "9", "VSI_CACHE": "FALSE", "GDAL_HTTP_RETRY_DELAY": "0.5"}
    options = gdal_options(environ=env)
    assert options["GDAL_HTTP_MAX_RETRY"] == "9" and options["VSI_CACHE"] == "FALSE"
    settings = HttpSettings.from_env(env)
    assert settings.max_retry == 9 and settings.retry_delay == 0.5


def test_bad_http_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GDAL_HTTP_MAX_RETRY"):
        HttpSettings.from_env({"GDAL_HTTP_MAX_RETRY": "lots"})
