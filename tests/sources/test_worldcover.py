"""The WorldCover label source: the public tile layout, windows mosaicked across tiles.

Fixtures are WorldCover-layout tiles on the real 1/12000 degree grid, written by code
(two tiles meeting at 15 N), read from a folder and over HTTP on 127.0.0.1; the label
quality mask (``labels.min_quality``) on InputQuality tiles written by code at 60 m and
on a real crop of tile N00E006 (``tests/data/worldcover``).
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
from landcover.sources.worldcover import (
    QualityMask,
    mask_labels,
    poor_quality,
    quality_paths,
    worldcover_path,
)

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


# --------------------------------------------------------------------------- label quality

QPX = 2000  # InputQuality pixels per degree (60 m: 6 x 6 label pixels)
DATA = Path(__file__).resolve().parents[1] / "data" / "worldcover"
ON = {"max_invalid_percent": 80, "min_s2_looks": 1}  # labels.min_quality as configured


def test_quality_paths_beside_the_map_first() -> None:
    paths = quality_paths(worldcover_path("https://b.example", "v200", "N00E006"))
    assert paths == [
        "https://b.example/v200/2021/map/ESA_WorldCover_10m_2021_v200_N00E006_InputQuality.tif",
        "https://b.example/v200/2021/input_quality/ESA_WorldCover_10m_2021_v200_N00E006_InputQuality.tif",
    ]


def test_min_quality_settings() -> None:
    assert QualityMask.from_config(None) is None
    assert QualityMask.from_config({}) == QualityMask(80.0, 1)
    assert QualityMask.from_config({"max_invalid_percent": 50}) == QualityMask(50, 1)
    with pytest.raises(ConfigError, match=r"labels\.min_quality.*null"):
        QualityMask.from_config({"max_invalid_percent": 120})


def test_poor_quality_and_mask_labels_on_hand_made_arrays() -> None:
    looks = np.array([[30, 0, 30], [30, -1, 2]], dtype=np.int16)
    invalid = np.array([[80, 10, 81], [100, -1, 10]], dtype=np.int16)
    poor = poor_quality(looks, invalid, QualityMask(max_invalid_percent=80, min_s2_looks=1))
    # 80 % is not above 80; no look at all; 81 %; 100 %; nodata (open sea) is kept
    np.testing.assert_array_equal(poor, [[False, True, True], [True, False, False]])
    codes = np.array([[10, 0, 80], [40, 80, 50]], dtype=np.uint8)
    masked, removed = mask_labels(codes, poor, nodata=0)
    np.testing.assert_array_equal(masked, [[10, 0, 0], [0, 80, 50]])
    assert masked.dtype == np.uint8
    assert removed == 2  # the pixel that already was nodata does not count
    stricter = poor_quality(looks, invalid, QualityMask(max_invalid_percent=100, min_s2_looks=3))
    np.testing.assert_array_equal(stricter, [[False, True, False], [False, False, True]])


def quality_pattern(qcol: np.ndarray, qrow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S2 looks and invalid % that depend on the global 60 m pixel position."""
    looks = np.where((qcol + 2 * qrow) % 7 == 0, 0, 40)
    invalid = np.where((qcol + qrow) % 5 == 0, 90, 20)
    looks = np.where((qcol + qrow) % 11 == 3, -1, looks)  # no quality: kept
    return looks, np.where(looks == -1, -1, invalid)


def write_quality(path: Path, west: float, north: float, width: int, height: int) -> None:
    """A sub-extent of an InputQuality tile on the real 60 m grid (int16, nodata -1)."""
    col0, row0 = round((west + 180) * QPX), round((90 - north) * QPX)
    qcol, qrow = np.meshgrid(col0 + np.arange(width), row0 + np.arange(height))
    looks, invalid = quality_pattern(qcol, qrow)
    s1 = np.where(looks == -1, -1, 25)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "int16",
        "nodata": -1,
        "crs": "EPSG:4326",
        "transform": Affine(1 / QPX, 0, col0 / QPX - 180, 0, -1 / QPX, 90 - row0 / QPX),
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([s1, looks, invalid]).astype(np.int16))


@pytest.fixture
def quality_bucket(bucket: Path) -> Path:
    """The two map tiles with their InputQuality tiles beside them, same extents."""
    for tile, north in (("N12W018", 15.0), ("N15W018", 15.01)):
        path = Path(quality_paths(worldcover_path(bucket, "v200", tile))[0])
        write_quality(path, -16.52, north, 80, 20)
    return bucket


def expected_removed(codes: np.ndarray, transform: Affine, limit: float) -> np.ndarray:
    """Where labels go: each label pixel's 60 m pixel by integer division (6 x 6)."""
    rows, cols = np.indices(codes.shape)
    gcol = np.rint((transform.c + 180) * PX).astype(int) + cols
    grow = np.rint((90 - transform.f) * PX).astype(int) + rows
    looks, invalid = quality_pattern(gcol // 6, grow // 6)
    poor = (looks != -1) & ((looks < 1) | (invalid > limit))
    return poor & (codes != 0)


def test_quality_mask_over_http_removes_a_known_count(
    quality_bucket: Path, serve, tmp_path: Path, caplog
) -> None:
    plain, masked = tmp_path / "plain.tif", tmp_path / "masked.tif"
    with serve(quality_bucket) as server:
        root = server.url()
        acquire_labels("delta", BORDER_BBOX, "worldcover", root=root, version="v200", out=plain)
        with caplog.at_level(logging.INFO):
            acquire_labels(
                "delta",
                BORDER_BBOX,
                "worldcover",
                root=root,
                version="v200",
                out=masked,
                min_quality={"max_invalid_percent": 50},
            )
    with rasterio.open(plain) as ds:
        before, transform = ds.read(1), ds.transform
    with rasterio.open(masked) as ds:
        after, tags = ds.read(1), ds.tags()
    gone = expected_removed(before, transform, 50)
    assert 0.1 < gone.mean() < 0.6  # the pattern removes a good share, not all
    np.testing.assert_array_equal(after, np.where(gone, 0, before))
    assert int(tags["quality_removed"]) == int(gone.sum())
    assert json.loads(tags["min_quality"]) == {"max_invalid_percent": 50, "min_s2_looks": 1}
    assert [Path(s).name for s in json.loads(tags["quality_source"])] == [
        "ESA_WorldCover_10m_2021_v200_N12W018_InputQuality.tif",
        "ESA_WorldCover_10m_2021_v200_N15W018_InputQuality.tif",
    ]
    assert f"removed {int(gone.sum())} of {int((before != 0).sum())}" in caplog.text


def test_quality_mask_off_leaves_labels_unchanged(quality_bucket: Path, tmp_path: Path) -> None:
    outs = [tmp_path / "default.tif", tmp_path / "null.tif"]
    acquire_labels(
        "delta", BORDER_BBOX, "worldcover", root=quality_bucket, version="v200", out=outs[0]
    )
    acquire_labels(
        "delta",
        BORDER_BBOX,
        "worldcover",
        root=quality_bucket,
        version="v200",
        out=outs[1],
        min_quality=None,
    )
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with rasterio.open(outs[0]) as ds:
        codes, transform, tags = ds.read(1), ds.transform, ds.tags()
    np.testing.assert_array_equal(codes, expected_codes(transform, codes.shape))
    assert not {"quality_removed", "quality_source", "min_quality"} & set(tags)


def test_quality_mask_needs_the_quality_tile(bucket: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.tif"
    with pytest.raises(SourceError, match=r"Area 'delta'.*N12W018_InputQuality\.tif.*Fix.*null"):
        acquire_labels(
            "delta",
            BORDER_BBOX,
            "worldcover",
            root=bucket,
            version="v200",
            out=out,
            min_quality=ON,
        )
    assert not out.exists()


def test_quality_mask_on_the_real_principe_tile(tmp_path: Path) -> None:
    """Real map and InputQuality crops of tile N00E006: the open sea has no quality."""
    folder = tmp_path / "v200" / "2021" / "map"
    folder.mkdir(parents=True)
    map_path = Path(worldcover_path(tmp_path, "v200", "N00E006"))
    map_path.symlink_to(DATA / "ESA_WorldCover_10m_2021_v200_principe_clip.tif")
    Path(quality_paths(str(map_path))[0]).symlink_to(
        DATA / "ESA_WorldCover_10m_2021_v200_N00E006_InputQuality_principe_clip.tif"
    )
    bbox = (7.30, 1.50, 7.40, 1.60)  # the island's west coast and the sea
    plain, masked = tmp_path / "plain.tif", tmp_path / "masked.tif"
    acquire_labels("principe", bbox, "worldcover", root=tmp_path, version="v200", out=plain)
    acquire_labels(
        "principe", bbox, "worldcover", root=tmp_path, version="v200", out=masked, min_quality=ON
    )
    with rasterio.open(plain) as ds:
        before, transform = ds.read(1), ds.transform
    with rasterio.open(masked) as ds:
        after, tags = ds.read(1), ds.tags()
    with rasterio.open(quality_paths(str(map_path))[0]) as ds:
        quality, qt = ds.read(), ds.transform
    # each label pixel's 60 m pixel, by index arithmetic on the tile's grids
    rows, cols = np.indices(before.shape)
    qcol = (np.rint((transform.c - qt.c) * PX).astype(int) + cols) // 6
    qrow = (np.rint((qt.f - transform.f) * PX).astype(int) + rows) // 6
    looks, invalid = quality[1][qrow, qcol], quality[2][qrow, qcol]
    gone = (looks >= 0) & ((looks < 1) | (invalid > 80)) & (before != 0)
    np.testing.assert_array_equal(after, np.where(gone, 0, before))
    assert int(tags["quality_removed"]) == int(gone.sum()) > 0
    sea = looks < 0  # WorldCover maps the open sea as water without a quality
    assert sea.any() and set(np.unique(after[sea])) == {80}
