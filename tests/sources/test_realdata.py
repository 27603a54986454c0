"""The local sources on real data: a BigEarthNet Sentinel-2 patch and a WorldCover crop.

The files in ``tests/data/`` are small, unchanged pieces of what the real sources
publish (see ``tests/data/README.md`` for origin and licences): band GeoTIFFs at 10, 20
and 60 m in UTM 33N, and WorldCover codes in EPSG:4326.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landcover.classes import IGNORE, ClassMap
from landcover.grid import area_grid
from landcover.prepare.align import align_area
from landcover.sources import acquire_imagery, acquire_labels

DATA = Path(__file__).resolve().parents[1] / "data"
PATCH = "S2A_MSIL2A_20170613T101031_87_48"
PATCH_DIR = DATA / "bigearthnet" / PATCH
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
RESOLUTION = {"B01": 60, "B09": 60, "B02": 10, "B03": 10, "B04": 10, "B08": 10}  # others 20 m
WORLDCOVER = DATA / "worldcover" / "ESA_WorldCover_10m_2021_v200_principe_clip.tif"
PRINCIPE_BBOX = (7.36, 1.55, 7.46, 1.66)  # coast, forest, the town: all seven codes
PRINCIPE_CODES = {10, 20, 30, 50, 60, 80, 90}


def band_path(band: str) -> Path:
    return PATCH_DIR / f"{PATCH}_{band}.tif"


def patch_bbox(inset: float = 180) -> tuple[float, float, float, float]:
    """The patch's footprint in degrees, ``inset`` metres inside its edges."""
    with rasterio.open(band_path("B02")) as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    return transform_bounds(
        crs, "EPSG:4326", left + inset, bottom + inset, right - inset, top - inset
    )


@pytest.fixture(scope="module")
def stacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "imagery.tif"
    acquire_imagery(
        "austria",
        patch_bbox(),
        "local",
        root=str(PATCH_DIR / f"{PATCH}_{{band}}.tif"),  # one file per band
        bands=BANDS,
        out=out,
        scale=1e-4,  # BigEarthNet: DN = reflectance x 10000, baseline < 04.00, no offset
        offset=0.0,
        min_coverage=0.5,
        resolution=10,
    )
    return out


def test_real_data_files_are_as_documented() -> None:
    for band in BANDS:
        with rasterio.open(band_path(band)) as ds:
            assert ds.crs.to_epsg() == 32633 and ds.dtypes[0] == "uint16"
            assert ds.res == (RESOLUTION.get(band, 20),) * 2
            assert ds.read(1).min() > 0  # no 0 DN: no pixel turns into nodata
    with rasterio.open(WORLDCOVER) as ds:
        assert ds.crs.to_epsg() == 4326 and ds.dtypes[0] == "uint8" and ds.nodata == 0


def test_bigearthnet_bands_stack_on_one_grid(stacked: Path) -> None:
    """10, 20 and 60 m bands on the 10 m area grid: each source pixel repeated, exactly."""
    grid = area_grid(patch_bbox(), 10)
    assert grid.crs == "EPSG:32633"  # the patch's own UTM zone
    with rasterio.open(stacked) as ds:
        assert ds.crs.to_epsg() == 32633
        assert ds.transform == grid.transform and ds.shape == grid.shape
        assert ds.count == len(BANDS) and list(ds.descriptions) == BANDS
        assert ds.dtypes == ("uint16",) * len(BANDS) and ds.nodata == 0
        dn = ds.read()
        reflectance = dn * np.array(ds.scales)[:, None, None] + np.array(ds.offsets)[:, None, None]
    for index, band in enumerate(BANDS):
        with rasterio.open(band_path(band)) as src:
            source, transform = src.read(1), src.transform
        factor = RESOLUTION.get(band, 20) // 10
        row0 = round((transform.f - grid.transform.f) / 10)
        col0 = round((grid.transform.c - transform.c) / 10)
        assert row0 >= 0 and col0 >= 0  # the grid lies inside the patch
        rows = (row0 + np.arange(grid.height)) // factor
        cols = (col0 + np.arange(grid.width)) // factor
        expected = source[np.ix_(rows, cols)]
        # the composite's encoding: DN = reflectance x 10000 + 1000
        np.testing.assert_array_equal(dn[index], expected.astype(np.int64) + 1000, err_msg=band)
        np.testing.assert_allclose(reflectance[index], expected * 1e-4, atol=1e-6)


def test_60m_bands_are_6x6_blocks(stacked: Path) -> None:
    with rasterio.open(stacked) as ds:
        b01 = ds.read(BANDS.index("B01") + 1)
        transform = ds.transform
    with rasterio.open(band_path("B01")) as src:
        # the 60 m pixel edges in the grid's columns and rows
        col = round((src.transform.c - transform.c) / 10) % 6
        row = round((transform.f - src.transform.f) / 10) % 6
    block = b01[(6 - row) % 6 :, (6 - col) % 6 :][:6, :6]
    assert (block == block[0, 0]).all()
    assert len(np.unique(b01)) <= 20 * 20


def principe_labels(folder: Path) -> Path:
    out = folder / "labels.tif"
    acquire_labels(
        "principe", PRINCIPE_BBOX, "local", root=str(WORLDCOVER), min_coverage=0.5, out=out
    )
    return out


def test_worldcover_crop_through_the_local_label_source(tmp_path: Path) -> None:
    """The window over the bbox, pixel-identical to the file, codes and grid kept."""
    out = principe_labels(tmp_path)
    with rasterio.open(out) as ds, rasterio.open(WORLDCOVER) as src:
        assert ds.crs.to_epsg() == 4326 and ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.res == pytest.approx(src.res)
        codes = ds.read(1)
        col = round((ds.transform.c - src.transform.c) / src.res[0])
        row = round((src.transform.f - ds.transform.f) / src.res[1])
        expected = src.read(1, window=Window(col, row, ds.width, ds.height))
    np.testing.assert_array_equal(codes, expected)
    assert set(np.unique(codes).tolist()) == PRINCIPE_CODES


def test_worldcover_codes_survive_reprojection_to_utm(tmp_path: Path, repo_root: Path) -> None:
    """Aligned onto the area's UTM 32N grid with the Senegal class map: every code present
    in the source is present after nearest resampling, in about the same proportion."""
    labels = principe_labels(tmp_path)
    grid = area_grid(PRINCIPE_BBOX, 10)
    assert grid.crs == "EPSG:32632"
    imagery = tmp_path / "imagery.tif"  # flat imagery: only the labels matter here
    with rasterio.open(
        imagery, "w", driver="GTiff", count=1, dtype="uint16", nodata=0, **grid.profile()
    ) as dst:
        dst.write(np.full(grid.shape, 2000, dtype=np.uint16), 1)
        dst.scales, dst.offsets = (1e-4,), (-0.1,)
    config = yaml.safe_load((repo_root / "config" / "senegal.yaml").read_text())
    class_map = ClassMap.from_config(config["classes"], config["ignore_codes"])
    out_labels = tmp_path / "aligned_labels.tif"
    align_area(
        "principe",
        PRINCIPE_BBOX,
        imagery,
        labels,
        tmp_path / "aligned_image.tif",
        out_labels,
        classes=config["classes"],
        ignore_codes=config["ignore_codes"],
        resolution=10,
        crs=None,
        label_resampling="nearest",
    )
    with rasterio.open(out_labels) as ds:
        assert ds.crs.to_epsg() == 32632 and ds.transform == grid.transform
        index = ds.read(1)
    with rasterio.open(labels) as ds:
        source = class_map.remap(ds.read(1), nodata=0)

    def proportions(values: np.ndarray) -> dict[int, float]:
        kept = values[values != IGNORE]
        found, counts = np.unique(kept, return_counts=True)
        return dict(zip(found.tolist(), (counts / counts.sum()).tolist(), strict=True))

    before, after = proportions(source), proportions(index)
    assert len(before) == len(PRINCIPE_CODES)
    assert set(after) == set(before)
    for cls, share in before.items():
        assert after[cls] == pytest.approx(share, abs=0.002 + 0.05 * share), class_map.names[cls]
