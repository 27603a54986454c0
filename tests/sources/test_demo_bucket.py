"""The demo bucket: public layouts, raster and STAC contracts, realism and determinism.

One small bucket (two 0.01 degree areas, one straddling the 15 N WorldCover tile border)
is generated once per module; the pure generators are tested on small arrays.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import rowcol
from rasterio.warp import transform, transform_bounds
from rio_cogeo.cogeo import cog_validate

from landcover.errors import ConfigError
from landcover.grid import utm_crs
from landcover.sources.demo import bucket as bucket_writers
from landcover.sources.demo.bucket import WORLDCOVER_COLOURS, make_demo_bucket, mgrs_square
from landcover.sources.demo.landscapes import LANDSCAPES, synthesize_landscape
from landcover.sources.demo.radiometry import DemoArea, acquisition_dates, synthesize_area
from landcover.sources.sentinel2 import ASSET_KEYS, BAND_RESOLUTION, SCL_MASK

PX = 12000  # WorldCover pixels per degree
AREAS = {
    # straddles 15 N: WorldCover tiles N12W018 and N15W018
    "delta": {"bbox": [-16.505, 14.995, -16.495, 15.005], "landscape": "delta"},
    "city": {"bbox": [-16.485, 14.985, -16.475, 14.995], "landscape": "city"},
}
DATES = ("2024-01-01", "2024-03-31")
N_DATES = 3
SEED = 7
ITEM_ID = re.compile(r"^S2[AB]_(\d{2})([C-X])([A-Z]{2})_(\d{8})_(\d)_L2A$")
BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "demo-bucket"
    assert make_demo_bucket(root, AREAS, DATES, n_dates=N_DATES, seed=SEED) == root
    return root


@pytest.fixture(scope="module")
def synthesized() -> dict[str, DemoArea]:
    start, end = (dt.date.fromisoformat(d) for d in DATES)
    return {
        name: synthesize_area(name, tuple(a["bbox"]), a["landscape"], (start, end), N_DATES, SEED)
        for name, a in AREAS.items()
    }


@pytest.fixture(scope="module")
def items(bucket: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(bucket / "stac" / "catalog.json"))
    return sorted(catalog.get_items(recursive=True), key=lambda item: item.id)


def read(item: pystac.Item, band: str, **kwargs: object) -> np.ndarray:
    with rasterio.open(item.assets[ASSET_KEYS[band]].get_absolute_href()) as ds:
        return ds.read(1, **kwargs)


def area_of(item: pystac.Item) -> str:
    return item.properties["landcover:demo"]["area"]


# --------------------------------------------------------------------------- layout


def test_bucket_layout(bucket: Path, items: list[pystac.Item]) -> None:
    tiles = sorted(p.name for p in (bucket / "v200" / "2021" / "map").iterdir())
    assert tiles == [
        "ESA_WorldCover_10m_2021_v200_N12W018_InputQuality.tif",
        "ESA_WorldCover_10m_2021_v200_N12W018_Map.tif",
        "ESA_WorldCover_10m_2021_v200_N15W018_InputQuality.tif",
        "ESA_WorldCover_10m_2021_v200_N15W018_Map.tif",
    ]
    grid = json.loads((bucket / "v200" / "2021" / "esa_worldcover_grid.geojson").read_text())
    assert sorted(f["properties"]["ll_tile"] for f in grid["features"]) == ["N12W018", "N15W018"]
    north = next(f for f in grid["features"] if f["properties"]["ll_tile"] == "N15W018")
    assert north["geometry"]["coordinates"][0][0] == [-18, 15]

    assert len(items) == len(AREAS) * N_DATES
    for item in items:
        zone, band, square, day, _ = ITEM_ID.match(item.id).groups()
        when = item.datetime
        folder = (
            bucket
            / "sentinel-s2-l2a-cogs"
            / zone
            / band
            / square
            / str(when.year)
            / str(when.month)
            / item.id
        )
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{b}.tif" for b in BANDS)
        assert day == f"{when:%Y%m%d}"
    # nothing left beside the bucket by the atomic write
    assert [p.name for p in bucket.parent.iterdir()] == [bucket.name]


def test_mgrs_square_of_known_tiles() -> None:
    assert mgrs_square(2.35, 48.85) == (31, "U", "DQ")  # Paris, tile 31UDQ
    assert mgrs_square(11.58, 48.14) == (32, "U", "PU")  # Munich, tile 32UPU
    assert mgrs_square(-16.5, 15.0)[:2] == (28, "P")


# --------------------------------------------------------------------------- WorldCover


@pytest.mark.parametrize("tile", ["N12W018", "N15W018"])
def test_worldcover_tile_profile(bucket: Path, tile: str) -> None:
    path = bucket / "v200" / "2021" / "map" / f"ESA_WorldCover_10m_2021_v200_{tile}_Map.tif"
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors
    west, south = -18.0, 12.0 if tile == "N12W018" else 15.0
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 4326
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        t = ds.transform
        assert t.a == pytest.approx(1 / PX) and t.e == pytest.approx(-1 / PX)
        # pixel edges on the real tile grid: west + k / 12000
        k = (t.c - west) * PX
        assert k == pytest.approx(round(k), abs=1e-6)
        assert (south + 3 - t.f) * PX == pytest.approx(round((south + 3 - t.f) * PX), abs=1e-6)
        # a sub-extent inside its own 3 degree tile
        left, bottom, right, top = ds.bounds
        assert west <= left < right <= west + 3 and south <= bottom < top <= south + 3
        assert ds.width < 36000 and ds.height < 36000
        assert ds.overviews(1)
        colours = ds.colormap(1)
        for code, rgba in WORLDCOVER_COLOURS.items():
            if code:
                assert colours[code] == rgba
        codes = ds.read(1)
    assert set(np.unique(codes)) <= {0, *WORLDCOVER_COLOURS}
    assert (codes != 0).any()


def test_straddling_area_is_split_at_the_tile_border(bucket: Path) -> None:
    folder = bucket / "v200" / "2021" / "map"
    with rasterio.open(folder / "ESA_WorldCover_10m_2021_v200_N12W018_Map.tif") as ds:
        assert ds.bounds.top == pytest.approx(15.0)
    with rasterio.open(folder / "ESA_WorldCover_10m_2021_v200_N15W018_Map.tif") as ds:
        assert ds.bounds.bottom == pytest.approx(15.0)
        assert (ds.read(1)[-1] != 0).any()  # the delta's northern half reaches the border


def test_labels_are_the_class_map_on_the_worldcover_grid(
    bucket: Path, synthesized: dict[str, DemoArea]
) -> None:
    area = synthesized["delta"]
    west, south, east, north = area.bbox
    lons = np.linspace(west, east, 40)
    lats = np.linspace(south, north, 40)
    lon, lat = (a.ravel() for a in np.meshgrid(lons, lats))
    # the label at each WorldCover pixel centre ...
    lon = (np.floor(lon * PX) + 0.5) / PX
    lat = (np.floor(lat * PX) + 0.5) / PX
    labels = np.zeros(lon.shape, dtype=np.uint8)
    for tile, south_edge in (("N12W018", 12), ("N15W018", 15)):
        inside = (lat >= south_edge) & (lat < south_edge + 3)
        path = bucket / "v200" / "2021" / "map" / f"ESA_WorldCover_10m_2021_v200_{tile}_Map.tif"
        with rasterio.open(path) as ds:
            labels[inside] = [v[0] for v in ds.sample(zip(lon[inside], lat[inside], strict=True))]
    # ... is the class of the 10 m UTM pixel it falls in (nearest)
    xs, ys = transform("EPSG:4326", area.grid.crs, lon, lat)
    rows, cols = rowcol(area.grid.transform, xs, ys)
    assert (labels == area.codes[rows, cols]).mean() > 0.99


def test_input_quality_from_scl_is_pure() -> None:
    clear, cloud, shadow, edge = 4, 9, 3, 0
    scl = [
        np.array([[clear, cloud, edge]], dtype=np.uint8),
        np.array([[clear, shadow, edge]], dtype=np.uint8),
        np.array([[clear, clear, clear]], dtype=np.uint8),
        np.array([[cloud, clear, edge]], dtype=np.uint8),
    ]
    bands = bucket_writers.input_quality(scl)
    np.testing.assert_array_equal(bands[0], [[8, 8, 8]])  # S1: two looks per date
    np.testing.assert_array_equal(bands[1], [[4, 4, 1]])  # S2 looks: the imaged dates
    np.testing.assert_array_equal(bands[2], [[25, 50, 0]])  # % cloud, shadow (cirrus)


@pytest.mark.parametrize("tile", ["N12W018", "N15W018"])
def test_input_quality_tile_beside_its_map(bucket: Path, tile: str) -> None:
    folder = bucket / "v200" / "2021" / "map"
    quality = folder / f"ESA_WorldCover_10m_2021_v200_{tile}_InputQuality.tif"
    valid, errors, _ = cog_validate(str(quality))
    assert valid, errors
    with rasterio.open(folder / f"ESA_WorldCover_10m_2021_v200_{tile}_Map.tif") as ds:
        map_bounds = ds.bounds
    with rasterio.open(quality) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "int16" and ds.nodata == -1
        assert ds.crs.to_epsg() == 4326
        t = ds.transform
        assert t.a == pytest.approx(0.0005) and t.e == pytest.approx(-0.0005)
        assert (t.c + 180) * 2000 == pytest.approx(round((t.c + 180) * 2000), abs=1e-6)
        assert (90 - t.f) * 2000 == pytest.approx(round((90 - t.f) * 2000), abs=1e-6)
        assert ds.bounds == pytest.approx(map_bounds, abs=1e-9)  # covers the labels
        s1, looks, invalid = ds.read()
    known = looks != -1
    assert known.mean() > 0.5
    assert set(np.unique(s1[known])) == {2 * N_DATES}
    assert looks[known].min() >= 0 and looks[known].max() <= N_DATES
    assert invalid[known].min() >= 0 and invalid[known].max() <= 100
    assert invalid[known].std() > 5  # clouds vary across the area


def test_quality_mask_on_the_demo_bucket(bucket: Path, tmp_path: Path) -> None:
    from landcover.sources import acquire_labels

    bbox = tuple(AREAS["delta"]["bbox"])
    removed = []
    for limit in (100, 50):
        out = tmp_path / f"labels-{limit}.tif"
        acquire_labels(
            "delta",
            bbox,
            "worldcover",
            root=bucket,
            version="v200",
            out=out,
            min_quality={"max_invalid_percent": limit},
        )
        with rasterio.open(out) as ds:
            removed.append(int(ds.tags()["quality_removed"]))
            size = ds.width * ds.height
    # no pixel lacks a look; a share of the delta is cloudy on most of the demo's dates
    assert removed[0] == 0 and 0 < removed[1] < size / 2


# --------------------------------------------------------------------------- Sentinel-2


def test_sentinel2_band_cogs(bucket: Path, items: list[pystac.Item]) -> None:
    for item in items[::N_DATES]:  # one item per area
        bbox = AREAS[area_of(item)]["bbox"]
        crs = utm_crs((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
        left, bottom, right, top = transform_bounds("EPSG:4326", crs, *bbox)
        shapes = {}
        for band in BANDS:
            href = item.assets[ASSET_KEYS[band]].get_absolute_href()
            valid, errors, _ = cog_validate(href)
            assert valid, errors
            with rasterio.open(href) as ds:
                res = BAND_RESOLUTION[band]
                assert ds.crs.to_string() == crs == item.properties["proj:code"]
                assert ds.res == (res, res)
                assert ds.transform.c % 60 == 0 and ds.transform.f % 60 == 0
                assert ds.nodata == 0
                assert ds.dtypes[0] == ("uint8" if band == "SCL" else "uint16")
                # the bbox plus at least 200 m
                assert ds.bounds.left <= left - 200 and ds.bounds.right >= right + 200
                assert ds.bounds.bottom <= bottom - 200 and ds.bounds.top >= top + 200
                shapes[res] = ds.shape
        assert shapes[10] == (2 * shapes[20][0], 2 * shapes[20][1])


def test_dn_offset_convention_and_nodata(items: list[pystac.Item]) -> None:
    for item in items:
        scl = read(item, "SCL")
        for band in ("B02", "B08", "B11", "B12"):
            dn = read(item, band, out_shape=scl.shape, resampling=Resampling.nearest)
            assert (dn[scl != 0] >= 1000).all()  # DN = 10000 * reflectance + 1000
            assert (dn[scl == 0] == 0).all()
            clear = ~np.isin(scl, SCL_MASK)
            reflectance = dn[clear] * 0.0001 - 0.1
            assert 0.0 <= reflectance.min() and np.median(reflectance) < 0.6


def test_scl_marks_clouds_where_bands_are_bright(items: list[pystac.Item]) -> None:
    stats: dict[str, list[np.ndarray]] = {"cloud": [], "clear": [], "shadow": [], "cirrus": []}
    for item in items:
        scl = read(item, "SCL")
        blue = read(item, "B02", out_shape=scl.shape, resampling=Resampling.average)
        reflectance = blue * 0.0001 - 0.1
        stats["cloud"].append(reflectance[scl == 9])
        stats["clear"].append(reflectance[np.isin(scl, (4, 5, 6))])
        stats["shadow"].append(reflectance[scl == 3])
        stats["cirrus"].append(reflectance[scl == 10])
    mean = {k: float(np.concatenate(v).mean()) for k, v in stats.items()}
    assert mean["cloud"] > 0.35 > 0.15 > mean["clear"]
    assert mean["shadow"] < mean["clear"] < mean["cirrus"] < mean["cloud"]


def test_water_is_dark_in_nir_and_vegetation_bright(
    items: list[pystac.Item], synthesized: dict[str, DemoArea]
) -> None:
    for name, area in synthesized.items():
        item = min(
            (i for i in items if area_of(i) == name), key=lambda i: i.properties["eo:cloud_cover"]
        )
        nir = read(item, "B08") * 0.0001 - 0.1
        scl = read(item, "SCL").repeat(2, axis=0).repeat(2, axis=1)
        assert nir.shape == area.codes.shape
        clear = ~np.isin(scl, SCL_MASK)
        water = clear & (area.codes == 80)
        assert water.sum() > 50
        assert np.median(nir[water]) < 0.05
        green = clear & np.isin(area.codes, (10, 95))
        if green.sum() > 50:
            assert np.median(nir[green]) > 0.15


def test_each_area_has_a_fairly_clear_date_and_most_pixels_a_clear_one(
    items: list[pystac.Item],
) -> None:
    for name in AREAS:
        own = [i for i in items if area_of(i) == name]
        assert min(i.properties["eo:cloud_cover"] for i in own) < 5
        clear = np.stack([~np.isin(read(i, "SCL"), SCL_MASK) for i in own])
        assert clear.any(axis=0).mean() > 0.95


# --------------------------------------------------------------------------- STAC


def test_stac_catalog(bucket: Path, items: list[pystac.Item]) -> None:
    catalog = pystac.Catalog.from_file(str(bucket / "stac" / "catalog.json"))
    collection = catalog.get_child("sentinel-2-l2a")
    assert isinstance(collection, pystac.Collection)
    assert (bucket / "stac" / "sentinel-2-l2a" / "collection.json").exists()
    start, end = (dt.date.fromisoformat(d) for d in DATES)
    for item in items:
        assert Path(item.get_self_href()) == (
            bucket / "stac" / "sentinel-2-l2a" / item.id / f"{item.id}.json"
        )
        props = item.properties
        assert start <= item.datetime.date() <= end
        assert item.datetime.tzinfo is not None
        assert props["s2:processing_baseline"] >= "04.00"
        assert props["earthsearch:boa_offset_applied"] is False
        assert props["proj:code"].startswith("EPSG:326")
        assert item.bbox is not None and item.geometry["type"] == "Polygon"
        west, south, east, north = AREAS[area_of(item)]["bbox"]
        assert item.bbox[0] < west and item.bbox[1] < south
        assert item.bbox[2] > east and item.bbox[3] > north
        assert set(item.assets) == set(ASSET_KEYS.values())
        for band, key in ASSET_KEYS.items():
            asset = item.assets[key]
            assert not Path(asset.href).is_absolute() and not asset.href.startswith("/")
            assert Path(asset.get_absolute_href()).exists()
            assert asset.media_type == pystac.MediaType.COG
            (raster,) = asset.extra_fields["raster:bands"]
            assert raster["nodata"] == 0
            if band == "SCL":
                assert "scale" not in raster
            else:
                assert (raster["scale"], raster["offset"]) == (0.0001, -0.1)
                assert asset.extra_fields["eo:bands"][0]["name"] == band
                assert asset.extra_fields["gsd"] == BAND_RESOLUTION[band]
        # eo:cloud_cover is SCL's share of cloud and cirrus
        scl = read(item, "SCL")
        share = 100 * np.isin(scl[scl != 0], (8, 9, 10)).mean()
        assert props["eo:cloud_cover"] == pytest.approx(share, abs=0.01)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_arrays(synthesized: dict[str, DemoArea]) -> None:
    start, end = (dt.date.fromisoformat(d) for d in DATES)
    first = synthesized["city"]
    again = synthesize_area(
        "city", tuple(AREAS["city"]["bbox"]), "city", (start, end), N_DATES, SEED
    )
    assert np.array_equal(first.codes, again.codes)
    for a, b in zip(first.acquisitions, again.acquisitions, strict=True):
        assert a.datetime == b.datetime and a.cloud_cover == b.cloud_cover
        for band in BANDS:
            assert np.array_equal(a.bands[band], b.bands[band])
    other = synthesize_area(
        "city", tuple(AREAS["city"]["bbox"]), "city", (start, end), N_DATES, SEED + 1
    )
    assert not np.array_equal(first.codes, other.codes)


def test_same_seed_same_bucket_and_rerun_replaces_it(tmp_path: Path) -> None:
    areas = {"tiny": {"bbox": [-16.50, 15.01, -16.495, 15.015], "landscape": "lake"}}

    def arrays(root: Path) -> dict[str, np.ndarray]:
        out = {}
        for path in sorted(root.rglob("*.tif")):
            with rasterio.open(path) as ds:
                out[str(path.relative_to(root))] = ds.read()
        return out

    a = make_demo_bucket(tmp_path / "a", areas, DATES, n_dates=2, seed=1)
    b = make_demo_bucket(tmp_path / "b", areas, DATES, n_dates=2, seed=1)
    first, second = arrays(a), arrays(b)
    assert first.keys() == second.keys() and len(first) == 2 * 11 + 2  # + map, quality
    for key in first:
        assert np.array_equal(first[key], second[key]), key
    make_demo_bucket(tmp_path / "a", areas, DATES, n_dates=2, seed=2)  # replaces it
    tile = "v200/2021/map/ESA_WorldCover_10m_2021_v200_N15W018_Map.tif"
    assert not np.array_equal(first[tile], arrays(a)[tile])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


# --------------------------------------------------------------------------- landscapes


def fractions(codes: np.ndarray) -> dict[int, float]:
    return {code: float((codes == code).mean()) for code in (10, 20, 30, 40, 50, 60, 80, 90, 95)}


def test_landscapes_have_distinct_class_mixes() -> None:
    mixes = {
        kind: fractions(synthesize_landscape(kind, (200, 200), np.random.default_rng(3)).codes)
        for kind in LANDSCAPES
    }
    lake, city, forest, delta = (mixes[k] for k in ("lake", "city", "forest", "delta"))
    assert lake[80] > 0.05 and lake[40] > 0.1 and lake[50] == 0
    assert city[50] > 0.25 and city[80] > 0.05 and city[40] == 0
    assert forest[10] > 0.3 and forest[40] > 0.02 and forest[80] > 0.005
    assert delta[95] > 0.05 and delta[90] > 0.05 and delta[80] > 0.03
    for k1 in LANDSCAPES:
        for k2 in LANDSCAPES:
            if k1 < k2:
                distance = sum(abs(mixes[k1][c] - mixes[k2][c]) for c in mixes[k1])
                assert distance > 0.5, (k1, k2)


@pytest.mark.parametrize("kind", LANDSCAPES)
def test_landscapes_are_coherent_shapes_not_noise(kind: str) -> None:
    codes = synthesize_landscape(kind, (200, 200), np.random.default_rng(5)).codes
    same = (codes[1:, :] == codes[:-1, :]).mean() + (codes[:, 1:] == codes[:, :-1]).mean()
    assert same / 2 > 0.8
    assert len(np.unique(codes)) >= 4


def test_acquisition_dates_are_distinct_and_in_range() -> None:
    start, end = dt.date(2024, 1, 1), dt.date(2024, 3, 31)
    days = acquisition_dates(start, end, 4, np.random.default_rng(0))
    assert len(set(days)) == 4 and days == sorted(days)
    assert all(start <= d <= end for d in days)
    assert all((b - a).days % 5 == 0 for a, b in itertools.pairwise(days))
    assert (
        len(acquisition_dates(start, start + dt.timedelta(days=2), 3, np.random.default_rng(0)))
        == 3
    )


# --------------------------------------------------------------------------- bad input


def test_unknown_landscape_names_the_area(tmp_path: Path) -> None:
    areas = {"moon": {"bbox": [0, 0, 0.01, 0.01], "landscape": "crater"}}
    with pytest.raises(ConfigError, match=r"Area 'moon'.*landscape.*'crater'"):
        make_demo_bucket(tmp_path / "b", areas, DATES, n_dates=N_DATES, seed=SEED)


def test_date_range_too_short_for_n_dates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_dates=4"):
        make_demo_bucket(tmp_path / "b", AREAS, ("2024-03-01", "2024-01-01"), n_dates=4, seed=SEED)
    assert not (tmp_path / "b").exists()


def test_dates_that_are_not_iso_dates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ISO dates"):
        make_demo_bucket(tmp_path / "b", AREAS, ("January", "March"), n_dates=N_DATES, seed=SEED)
    assert not (tmp_path / "b").exists()


def test_refuses_to_replace_a_folder_that_is_not_a_bucket(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a demo bucket"):
        make_demo_bucket(tmp_path / "b", AREAS, DATES, n_dates=N_DATES, seed=SEED)


def test_failure_leaves_no_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bucket_writers, "_write_stac", fail)
    areas = {"tiny": {"bbox": [-16.50, 15.01, -16.495, 15.015], "landscape": "forest"}}
    with pytest.raises(RuntimeError, match="disk full"):
        make_demo_bucket(tmp_path / "b", areas, DATES, n_dates=1, seed=SEED)
    assert list(tmp_path.iterdir()) == []
