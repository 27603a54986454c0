"""The cloud-masked Sentinel-2 composite from a static STAC catalog (the demo bucket's).

Fixtures are a static STAC catalog of band GeoTIFFs written by code (10 m and 20 m,
UTM 28N, pixel edges on 60 m) in the Earth Search layout. A STAC API over HTTP:
test_http_sources.py; here over HTTP only the radiometry guard (items mislabelled as
Earth Search's are) and the pinned scene lists (a rerun with the API stopped).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import area_grid
from landcover.sources import acquire_imagery, source_inputs
from landcover.sources.sentinel2 import ASSET_KEYS
from landcover.sources.stac import composite_catalog

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


def make_item(
    root: Path,
    item_id: str,
    day: str,
    cloud: float,
    offset_in_dn: bool | None = None,
    scl=None,
    **props,
) -> pystac.Item:
    """An item with B02 (10 m), B05 and SCL (20 m) band files beside the catalog.

    The DN hold the +1000 unless the item says ``earthsearch:boa_offset_applied: true``;
    ``offset_in_dn`` overrides that (a mislabelled item). ``scl(x, y)``: its own SCL.
    """
    applied = props.get("earthsearch:boa_offset_applied", False)
    add = 1000 if (not applied if offset_in_dn is None else offset_in_dn) else 0
    name = item_id.split("_")[0]
    folder = root / "sentinel-s2-l2a-cogs" / item_id
    b02 = B02_REFL.get(name, 0.5)

    def b02_dn(x, y):
        dn = np.full(x.shape, round(b02 * 10000) + add)
        if name == "d3":
            dn[in_box(x, y, CLOUD)] = 9000  # bright cloud top
        return dn

    def default_scl(x, y):
        out = np.full(x.shape, 4)
        out[in_box(x, y, OVERCAST)] = 8
        if name == "d3":
            out[in_box(x, y, CLOUD)] = 9
        return out

    write_band(folder / "B02.tif", 10, b02_dn)
    write_band(folder / "B05.tif", 20, lambda x, y: np.rint(b05_refl(x, y) * 10000) + add)
    write_band(folder / "SCL.tif", 20, scl or default_scl)
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
    "items": None,
    "min_clear": 0.5,
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


def test_composite_writes_clear_count_and_items(composite: Path) -> None:
    x, y = centres()
    with rasterio.open(composite.with_name("clear_count.tif")) as ds:
        assert ds.dtypes == ("uint8",) and ds.transform == GRID.transform
        count = ds.read(1)
    cloud, overcast = in_box(x, y, CLOUD), in_box(x, y, OVERCAST)
    assert (count[overcast] == 0).all() and (count[cloud] == 2).all()
    assert (count[~cloud & ~overcast] == 3).all()
    record = json.loads(composite.with_name("items.json").read_text())
    assert record["area"] == "delta" and record["collection"] == "sentinel-2-l2a"
    entries = {entry["id"]: entry for entry in record["items"]}
    assert list(entries) == ["d1_applied", "d2", "d3_cloudy"]
    assert entries["d1_applied"]["offset"] == 0.0 and entries["d2"]["offset"] == -0.1
    assert entries["d2"]["processing_baseline"] == "05.10"
    assert entries["d2"]["cloud_cover"] == 20 and entries["d2"]["datetime"].startswith("2024-01-15")
    assert Path(entries["d2"]["hrefs"]["B05"]).is_file()  # absolute, not relative to the catalog


def patchy_scl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cloud (9) over the western 70 % of the fixture, clear (4) elsewhere."""
    split = LEFT + 0.7 * (RIGHT - LEFT)
    return np.where(x < split, 9, 4)


def test_min_clear_fails_naming_area_dates_and_fix(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    build_catalog(root, [make_item(root, "d2_patchy", "2024-01-15", 5, scl=patchy_scl)])
    out = tmp_path / "imagery.tif"
    catalog = {"root": root, "out": out, **IMAGERY}
    with pytest.raises(DataError) as err:
        composite_catalog("delta", S2_BBOX, **catalog)  # min_clear 0.5
    message = str(err.value)
    assert "Area 'delta': only 29.8%" in message and "2024-01-15" in message
    assert "widen imagery.dates" in message and "imagery.max_items" in message
    assert not out.exists() and not out.with_name("clear_count.tif").exists()
    composite_catalog("delta", S2_BBOX, **(catalog | {"min_clear": 0.25}))
    with rasterio.open(out.with_name("clear_count.tif")) as ds:
        count = ds.read(1)
    assert set(np.unique(count).tolist()) == {0, 1}
    assert count.mean() == pytest.approx(0.3, abs=0.01)


# ------------------------------------------------------------------ over HTTP


def served(item: pystac.Item, root: Path, server) -> dict:
    """The item as a STAC API publishes it: asset hrefs on the loopback file server."""
    data = item.to_dict(include_self_link=False)
    for asset in data["assets"].values():
        asset["href"] = server.url(Path(asset["href"]).relative_to(root))
    return data


def read_all(path: Path) -> tuple[np.ndarray, dict, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags()


def test_mislabelled_offset_is_decided_from_the_data(serve, tmp_path: Path, caplog) -> None:
    """Flag false but DN without the +1000 (as Earth Search's mislabelled items): read as 0."""
    root = tmp_path / "bucket"
    correct = make_item(root, "d2", "2024-01-15", 20)
    wrong = make_item(root, "d2_mislabelled", "2024-01-15", 20, offset_in_dn=False)
    assert wrong.properties["earthsearch:boa_offset_applied"] is False
    outs = {}
    with serve(root) as server:
        for item in (correct, wrong):
            server.add_items(item.id, [served(item, root, server)])
            outs[item.id] = tmp_path / item.id / "imagery.tif"
            config = IMAGERY | {"collection": item.id}
            with caplog.at_level(logging.WARNING, logger="landcover.sources.stac"):
                acquire_imagery(
                    "delta", S2_BBOX, "stac", root=server.url(), out=outs[item.id], **config
                )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "item d2_mislabelled" in warnings[0]
    assert "boa_offset_applied=False" in warnings[0] and "100% of its clear B02" in warnings[0]
    # the same reflectance as the correctly labelled item: B02 0.02 -> DN 1200
    fixed, _, _ = read_all(outs["d2_mislabelled"])
    right, _, _ = read_all(outs["d2"])
    np.testing.assert_array_equal(fixed, right)
    x, y = centres()
    assert (right[0][~in_box(x, y, OVERCAST)] == 1200).all()
    records = {
        name: json.loads(out.with_name("items.json").read_text())["items"][0]
        for name, out in outs.items()
    }
    assert records["d2_mislabelled"]["offset"] == 0.0
    assert records["d2_mislabelled"]["offset_metadata"] == -0.1
    assert records["d2_mislabelled"]["dark_share"] == 1.0
    assert records["d2"]["offset"] == -0.1 and records["d2"]["dark_share"] == 0.0


def test_pinned_rerun_without_the_api_is_byte_identical(serve, tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    items = fixture_items(root)
    (tmp_path / "api").mkdir()
    first, second = tmp_path / "run1" / "imagery.tif", tmp_path / "run2" / "imagery.tif"
    with serve(root) as files:
        with serve(tmp_path / "api") as api:
            api.add_items("sentinel-2-l2a", [served(item, root, files) for item in items])
            api_url = api.url()
            acquire_imagery("delta", S2_BBOX, "stac", root=api_url, out=first, **IMAGERY)
            assert any(path == "search" for _, path, _ in api.requests)
        # the API is gone: a search fails, the pinned scene list does not need it
        with pytest.raises(SourceError, match="STAC API search"):
            acquire_imagery("delta", S2_BBOX, "stac", root=api_url, out=second, **IMAGERY)
        pins = tmp_path / "pins"
        shutil.copytree(first.parent, pins / "delta")
        files.reset_counts()
        acquire_imagery(
            "delta", S2_BBOX, "stac", root=api_url, out=second, **(IMAGERY | {"items": str(pins)})
        )
        assert files.requests  # the COGs were read again
    one, two = read_all(first), read_all(second)
    np.testing.assert_array_equal(one[0], two[0])
    assert one[1] == two[1] and one[2] == two[2]
    assert first.read_bytes() == second.read_bytes()
    for name in ("clear_count.tif", "items.json"):
        assert first.with_name(name).read_bytes() == second.with_name(name).read_bytes()


def test_pinned_list_is_an_input_of_its_area(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pins = tmp_path / "pins"
    (pins / "delta").mkdir(parents=True)
    (pins / "delta" / "items.json").write_text("{}")
    (pins / "coast.json").write_text("{}")
    for kind in ("stac", "demo"):
        source = {"kind": kind, "items": "pins"}
        assert source_inputs("imagery", source, "delta") == [str(Path("pins/delta/items.json"))]
        assert source_inputs("imagery", source, "coast") == [str(Path("pins/coast.json"))]
        assert source_inputs("imagery", source, "gone") == []  # acquisition says what it tried
        assert source_inputs("imagery", {"kind": kind, "items": None}, "delta") == []
    # the acquisition's own output is not its input (a cycle)
    (tmp_path / "resources" / "raw" / "delta").mkdir(parents=True)
    (tmp_path / "resources" / "raw" / "delta" / "items.json").write_text("{}")
    assert source_inputs("imagery", {"kind": "stac", "items": "resources/raw"}, "delta") == []


def test_pinned_list_of_another_area_is_refused(stac_bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "imagery.tif"
    composite_catalog("delta", S2_BBOX, root=stac_bucket, out=out, **IMAGERY)
    pins = tmp_path / "pins" / "{area}.json"
    pins.parent.mkdir()
    shutil.copy(out.with_name("items.json"), tmp_path / "pins" / "other.json")
    with pytest.raises(ConfigError, match=r"Area 'other'.*written for area 'delta'"):
        composite_catalog(
            "other",
            S2_BBOX,
            root=stac_bucket,
            out=tmp_path / "o.tif",
            **(IMAGERY | {"items": str(pins)}),
        )
    with pytest.raises(ConfigError, match=r"Area 'gone'.*imagery\.items.*cp -r resources/raw"):
        composite_catalog(
            "gone",
            S2_BBOX,
            root=stac_bucket,
            out=tmp_path / "g.tif",
            **(IMAGERY | {"items": str(pins)}),
        )


def test_pinned_list_of_a_local_catalog_moves_with_the_project(tmp_path: Path, monkeypatch) -> None:
    """A catalog inside the project is pinned by paths relative to it, so a copy of the
    project (catalog and pinned lists) composites from its own files."""
    first = tmp_path / "first"
    root = first / "resources" / "bucket"
    build_catalog(root, fixture_items(root))
    monkeypatch.chdir(first)
    out = Path("resources/raw/delta/imagery.tif")
    composite_catalog("delta", S2_BBOX, root="resources/bucket", out=out, **IMAGERY)
    record = json.loads(out.with_name("items.json").read_text())
    hrefs = [h for entry in record["items"] for h in entry["hrefs"].values()]
    hrefs += [a["href"] for entry in record["items"] for a in entry["item"]["assets"].values()]
    assert hrefs and all(h.startswith("resources/bucket/") for h in hrefs)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    shutil.rmtree(first)  # nothing of the first project is left to read
    monkeypatch.chdir(second)
    again = Path("results/imagery.tif")
    pinned = IMAGERY | {"items": "resources/raw"}
    composite_catalog("delta", S2_BBOX, root="resources/bucket", out=again, **pinned)
    assert again.read_bytes() == out.read_bytes()
    assert again.with_name("items.json").read_bytes() == out.with_name("items.json").read_bytes()
