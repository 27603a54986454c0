"""The WorldCover label source: the public tile layout, windows mosaicked across tiles.

Fixtures are WorldCover-layout tiles on the real 1/12000 degree grid, written by code
(two tiles meeting at 15 N), read from a folder and over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import ConfigError, DataError, SourceError
from landcover.sources import acquire_labels
from landcover.sources.worldcover import worldcover_path

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


def test_unknown_worldcover_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="v300"):
        worldcover_path("x", "v300", "N00E000")


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
def http_root(bucket: Path, serve):
    """The bucket served on 127.0.0.1 (the `serve` fixture: byte ranges, as S3)."""
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
