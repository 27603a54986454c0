"""Folders of image and mask chips (kind chips): the mosaic, the pairing and bad chips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from landcover.errors import ConfigError, DataError, SourceError
from landcover.mapping.chips import chip_window
from landcover.prepare.align import align_area
from landcover.prepare.tiling import tile_area
from landcover.sources import acquire_imagery, acquire_labels
from landcover.sources.chips import chip_ids, layout

CLASSES = [
    {"name": "ground", "codes": [2], "colour": "#808080"},
    {"name": "burnt", "codes": [3], "colour": "#FF0000"},
]


def chip(path: Path, data: np.ndarray, driver: str = "PNG") -> Path:
    """Write ``data`` (bands, h, w) as a chip without georeferencing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": driver, "count": data.shape[0], "dtype": data.dtype.name}
    with rasterio.open(path, "w", **profile, height=data.shape[1], width=data.shape[2]) as dst:
        dst.write(data)
    return path


def chips(root: Path, n: int, size: int = 16, bands: int = 3, driver: str = "PNG") -> None:
    """``n`` image chips ``root/images/c{i}.png`` and masks ``root/masks/c{i}_mask.png``."""
    ext = "png" if driver == "PNG" else "tif"
    dtype = np.uint8 if driver == "PNG" else np.uint16
    for i in range(n):
        mask = np.full((1, size, size), 2, np.uint8)
        mask[0, : size // 2, : size // 2] = 3
        image = np.where(mask == 3, 200, 40).repeat(bands, axis=0).astype(dtype) + i
        chip(root / "images" / f"c{i}.{ext}", image, driver)
        chip(root / "masks" / f"c{i}_mask.{ext}", mask, driver)


def acquire(root: Path, tmp: Path, bands=("red", "green", "blue"), ext="png") -> tuple:
    raw_image, raw_labels = tmp / "raw_image.tif", tmp / "raw_labels.tif"
    settings = {"bands": list(bands), "scale": 1 / 255, "offset": 0.0}
    images = f"{root}/{{area}}/images/{{id}}.{ext}"
    masks = f"{root}/{{area}}/masks/{{id}}_mask.{ext}"
    acquire_imagery("train", None, "chips", window="all", root=images, out=raw_image, **settings)
    acquire_labels("train", None, "chips", window="all", root=masks, out=raw_labels)
    return raw_image, raw_labels


def align(raw_image: Path, raw_labels: Path, tmp: Path) -> tuple[Path, Path]:
    out = tmp / "image.tif", tmp / "labels.tif"
    align_area(
        "train", None, raw_image, raw_labels, *out, classes=CLASSES, ignore_codes=[],
        resolution=10, crs=None, label_resampling="nearest",
    )  # fmt: skip
    return out


def test_ids_and_layout(tmp_path):
    chips(tmp_path / "train", 3)
    found = chip_ids(str(tmp_path / "{area}/images/{id}.png"), "train")
    assert list(found) == ["c0", "c1", "c2"]
    assert layout(5) == (2, 3) and layout(4) == (2, 2) and layout(1) == (1, 1)
    with pytest.raises(SourceError, match=r"Area 'other': no chip matches"):
        chip_ids(str(tmp_path / "{area}/images/{id}.png"), "other")


def test_png_chips_become_one_scene(tmp_path):
    chips(tmp_path / "train", 5)
    raw_image, raw_labels = acquire(tmp_path, tmp_path)
    image, labels = align(raw_image, raw_labels, tmp_path)
    with rasterio.open(image) as ds, rasterio.open(labels) as lab:
        assert ds.crs is None and (ds.height, ds.width) == (32, 48)  # 2 rows x 3 columns
        assert list(ds.descriptions) == ["red", "green", "blue"]
        # chip c4 (row 1, column 1), its burnt corner
        np.testing.assert_allclose(ds.read(1, window=Window(16, 16, 8, 8)), (200 + 4) / 255)
        values = lab.read(1)
        assert values[16, 16] == 1 and values[30, 30] == 0  # c4: burnt, then ground
        assert (values[16:, 32:] == 255).all()  # the empty sixth cell
        assert json.loads(ds.tags()["chips"])["c4"].endswith("c4.png")


def test_multiband_geotiff_chips(tmp_path):
    chips(tmp_path / "train", 2, bands=4, driver="GTiff")
    raw_image, _ = acquire(tmp_path, tmp_path, bands=("b", "g", "r", "n"), ext="tif")
    with rasterio.open(raw_image) as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint16"


def test_bad_chips(tmp_path):
    chips(tmp_path / "train", 3)
    chip(tmp_path / "train/images/c9.png", np.zeros((3, 20, 16), np.uint8))
    with pytest.raises(DataError, match=r"Area 'train': image chip '.*c9.png' is 16 x 20 px"):
        acquire(tmp_path, tmp_path)
    (tmp_path / "train/images/c9.png").unlink()
    (tmp_path / "train/masks/c2_mask.png").unlink()
    raw_image, raw_labels = acquire(tmp_path, tmp_path)
    with pytest.raises(DataError, match=r"image chips without a mask \['.*c2.png'\]"):
        align(raw_image, raw_labels, tmp_path)
    chip(tmp_path / "train/masks/c2_mask.png", np.zeros((1, 16, 16), np.uint8) + 7)
    raw_image, raw_labels = acquire(tmp_path, tmp_path)
    with pytest.raises(DataError, match=r"code\(s\) \[7\].*in the mask chip '.*c2_mask.png'"):
        align(raw_image, raw_labels, tmp_path)
    assert not (tmp_path / "labels.tif").exists()
    with pytest.raises(ConfigError, match=r"window: all"):
        acquire_labels("train", None, "chips", window=[0, 0, 8, 8], root="x/{id}.png", out="o.tif")


def test_masks_of_another_size(tmp_path):
    chips(tmp_path / "train", 2)
    for i in range(2):
        chip(tmp_path / f"train/masks/c{i}_mask.png", np.full((1, 8, 8), 2, np.uint8))
    raw_image, raw_labels = acquire(tmp_path, tmp_path)
    with pytest.raises(DataError, match=r"mask '.*c0_mask.png' is 8 x 8 px but its image"):
        align(raw_image, raw_labels, tmp_path)


def test_patches_and_map_windows_keep_to_one_chip(tmp_path):
    chips(tmp_path / "train", 5)
    image, labels = align(*acquire(tmp_path, tmp_path), tmp_path)
    out = [tmp_path / name for name in ("images.npy", "labels.npy", "index.parquet")]
    names = [c["name"] for c in CLASSES]
    index = tile_area("train", image, labels, *out, 8, 4, 0.5, names, "float32")
    assert len(index) == 5 * 9  # 3 x 3 patches in each chip of 16 px, none across two
    assert ((index["row"] % 16) + 8 <= 16).all() and ((index["col"] % 16) + 8 <= 16).all()
    with pytest.raises(
        DataError, match=r"chips are 16 x 16 px, smaller than the patch size of 32 px.*at most 16"
    ):
        tile_area("train", image, labels, *out, 32, 32, 0.5, names, "float32")
    with rasterio.open(image) as ds:
        assert chip_window(ds.tags(), 256, 64, 16) == (16, 0)  # each chip one window
        assert chip_window(ds.tags(), 256, 64, 32) == (256, 64)  # 16 px cannot be one
    assert chip_window({}, 256, 64, 32) == (256, 64)
