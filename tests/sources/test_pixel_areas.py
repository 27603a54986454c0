"""Areas given as pixel windows of local files: what is read, and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from landcover.config import area_table, check_config, validated
from landcover.errors import ConfigError, DataError
from landcover.prepare.align import align_area
from landcover.sources import acquire_imagery, acquire_labels
from landcover.sources.pixel_areas import resolve_window, strips

CLASSES = [
    {"name": "ground", "codes": [1], "colour": "#808080"},
    {"name": "rock", "codes": [2], "colour": "#FFFFFF"},
]


def plain(path: Path, data: np.ndarray, nodata: float | None = None, **extra) -> Path:
    """A GeoTIFF without CRS or geotransform."""
    profile = {"driver": "GTiff", "count": data.shape[0], "dtype": data.dtype.name}
    profile.update(height=data.shape[1], width=data.shape[2], nodata=nodata, **extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    image = (np.arange(2 * 40 * 60, dtype=np.uint16).reshape(2, 40, 60) % 5000) + 100
    mask = np.ones((1, 40, 60), np.uint8)
    mask[0, :, 30:] = 2
    mask[0, 0, 0] = 0
    return plain(tmp_path / "img.tif", image), plain(tmp_path / "mask.tif", mask, nodata=0)


def test_windows_and_strips():
    assert resolve_window("all", 60, 40, "a", "f") == Window(0, 0, 60, 40)
    assert resolve_window([10, 5, 20, 30], 60, 40, "a", "f") == Window(10, 5, 20, 30)
    with pytest.raises(ConfigError, match=r"Area 'a': window \[50, 0, 20, 10\].*60 x 40 px"):
        resolve_window([50, 0, 20, 10], 60, 40, "a", "f")
    pairs = list(strips(Window(3, 7, 10, 25), rows=10))
    assert [p[0].row_off for p in pairs] == [7, 17, 27] and [p[1].row_off for p in pairs] == [
        0,
        10,
        20,
    ]
    assert sum(p[0].height for p in pairs) == 25


def test_a_window_is_copied_and_aligned_without_a_crs(scene, tmp_path):
    image, mask = scene
    raw_image, raw_labels = tmp_path / "raw_image.tif", tmp_path / "raw_labels.tif"
    settings = {"root": str(image), "bands": ["nir", "red"], "scale": 1e-4, "offset": 0.0}
    acquire_imagery("a", None, "local", window=[10, 5, 40, 30], out=raw_image, **settings)
    acquire_labels("a", None, "local", window=[10, 5, 40, 30], root=str(mask), out=raw_labels)
    with rasterio.open(raw_image) as ds, rasterio.open(image) as src:
        assert ds.crs is None and (ds.width, ds.height) == (40, 30)
        assert list(ds.descriptions) == ["nir", "red"] and ds.scales == (1e-4, 1e-4)
        np.testing.assert_array_equal(ds.read(), src.read(window=Window(10, 5, 40, 30)))
    out_image, out_labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    grid = align_area(
        "a",
        None,
        raw_image,
        raw_labels,
        out_image,
        out_labels,
        classes=CLASSES,
        ignore_codes=[],
        resolution=10,
        crs=None,
        label_resampling="nearest",
    )
    assert grid.crs is None and grid.shape == (30, 40)
    with rasterio.open(out_image) as ds, rasterio.open(out_labels) as lab:
        assert ds.crs is None and ds.dtypes[0] == "float32"
        expected = rasterio.open(image).read(1, window=Window(10, 5, 40, 30)) * 1e-4
        np.testing.assert_allclose(ds.read(1), expected, rtol=1e-6)
        labels = lab.read(1)
        assert labels[0, 0] == 0 and labels[0, 25] == 1  # mask columns 10.. and 30..
        assert lab.tags()["classes"] == '["ground", "rock"]'


def test_labels_of_another_size_are_refused(scene, tmp_path):
    image, _ = scene
    small = plain(tmp_path / "small.tif", np.ones((1, 20, 60), np.uint8))
    raw_image, raw_labels = tmp_path / "raw_image.tif", tmp_path / "raw_labels.tif"
    settings = {"root": str(image), "bands": ["nir", "red"], "scale": 1e-4, "offset": 0.0}
    acquire_imagery("a", None, "local", window="all", out=raw_image, **settings)
    acquire_labels("a", None, "local", window="all", root=str(small), out=raw_labels)
    with pytest.raises(DataError, match=r"Area 'a'.*60 x 20 px.*60 x 40 px.*same size"):
        align_area(
            "a",
            None,
            raw_image,
            raw_labels,
            tmp_path / "i.tif",
            tmp_path / "l.tif",
            classes=CLASSES,
            ignore_codes=[],
            resolution=10,
            crs=None,
            label_resampling="nearest",
        )
    assert not (tmp_path / "i.tif").exists() and not (tmp_path / "l.tif").exists()


def test_a_window_outside_the_file_and_unscaled_values_are_refused(scene, tmp_path):
    image, _ = scene
    settings = {"root": str(image), "bands": ["nir", "red"], "scale": 1e-4, "offset": 0.0}
    with pytest.raises(ConfigError, match=r"Area 'a': window \[0, 0, 61, 40\].*areas\.a\.window"):
        acquire_imagery(
            "a", None, "local", window=[0, 0, 61, 40], out=tmp_path / "x.tif", **settings
        )
    with pytest.raises(ConfigError, match=r"band nir .*imagery\.scale"):
        acquire_imagery(
            "a", None, "local", window="all", out=tmp_path / "x.tif", **(settings | {"scale": 1})
        )
    assert not (tmp_path / "x.tif").exists()


def test_one_file_per_area(scene, tmp_path):
    image, _ = scene
    (tmp_path / "site_b.tif").write_bytes(image.read_bytes())
    out = tmp_path / "raw.tif"
    settings = {"bands": ["nir", "red"], "scale": 1e-4, "offset": 0.0}
    root = str(tmp_path / "{area}.tif")
    acquire_imagery("site_b", None, "local", window="all", root=root, out=out, **settings)
    assert rasterio.open(out).tags()["source"] == str(tmp_path / "site_b.tif")


def config_with(areas: dict, kind: str = "local") -> dict:
    return validated(
        {
            "areas": areas,
            "imagery": {"kind": kind, "root": "img.tif", "bands": ["gray"]},
            "labels": {"kind": "local", "root": "mask.tif"},
            "classes": CLASSES,
            "split": {"method": "blocks"},
        }
    )


def test_window_areas_in_the_config():
    config = config_with({"a": {"window": "all"}, "b": {"window": [0, 0, 64, 64]}})
    areas = area_table(config["areas"])
    assert areas["a"].window == "all" and areas["b"].window == (0, 0, 64, 64)
    assert areas["a"].bbox is None
    check_config(config, areas)
    mixed = config_with({"a": {"window": "all"}, "b": {"bbox": [0, 0, 0.1, 0.1]}})
    with pytest.raises(ConfigError, match=r"areas: a are pixel windows but b are bboxes"):
        check_config(mixed, area_table(mixed["areas"]))
    stac = config_with({"a": {"window": "all"}}, kind="stac")
    with pytest.raises(ConfigError, match=r"imagery\.kind is 'stac'"):
        check_config(stac, area_table(stac["areas"]))
