"""Tiling an aligned area into patches: coverage, min_valid, random access, errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import DataError
from landcover.prepare.store import window_image, window_labels
from landcover.prepare.tiling import chip_patch_windows, patch_windows, tile_area, window_offsets

HEIGHT, WIDTH, BANDS = 50, 70, 3
TRANSFORM = Affine(10, 0, 400_000, 0, -10, 1_800_000)
CRS = "EPSG:32628"
NAMES = ["tree", "built_up", "water"]


def make_arrays() -> tuple[np.ndarray, np.ndarray]:
    bands, rows, cols = np.meshgrid(
        np.arange(BANDS), np.arange(HEIGHT), np.arange(WIDTH), indexing="ij"
    )
    image = (bands * 10_000 + rows * 100 + cols).astype(np.float32)
    labels = ((rows[0] + cols[0]) % 3).astype(np.uint8)
    labels[:16, :16] = 255  # the first window has no label: dropped
    image[1, 40, 60] = np.nan  # one nodata pixel: its stored label becomes 255
    return image, labels


def write_aligned(tmp_path: Path, image: np.ndarray, labels: np.ndarray, **tags: str) -> tuple:
    common = {"driver": "GTiff", "crs": CRS, "transform": TRANSFORM}
    common.update(width=WIDTH, height=HEIGHT, tiled=True, blockxsize=16, blockysize=16)
    image_path, labels_path = tmp_path / "image.tif", tmp_path / "labels.tif"
    with rasterio.open(
        image_path, "w", **common, count=BANDS, dtype="float32", nodata=np.nan
    ) as dst:
        dst.write(image)
    with rasterio.open(labels_path, "w", **common, count=1, dtype="uint8", nodata=255) as dst:
        dst.write(labels, 1)
        dst.update_tags(classes=json.dumps(NAMES), **tags)
    return image_path, labels_path


def outputs(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "patches"
    return {
        "out_images": out / "images.npy",
        "out_labels": out / "labels.npy",
        "out_index": out / "index.parquet",
    }


def tile(tmp_path: Path, image: Path, labels: Path, **kwargs: object) -> gpd.GeoDataFrame:
    args = {"size": 16, "stride": 16, "min_valid": 0.5, "class_names": NAMES, "dtype": "float32"}
    args |= kwargs
    return tile_area(area="a1", image=image, labels=labels, **outputs(tmp_path), **args)


def assert_no_outputs(tmp_path: Path) -> None:
    out = tmp_path / "patches"
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture
def tiled(tmp_path: Path) -> dict[str, object]:
    image, labels = make_arrays()
    tile(tmp_path, *write_aligned(tmp_path, image, labels))
    paths = outputs(tmp_path)
    return {
        "image": image,
        "labels": labels,
        "index": gpd.read_parquet(paths["out_index"]),
        "images_npy": np.load(paths["out_images"], mmap_mode="r"),
        "labels_npy": np.load(paths["out_labels"], mmap_mode="r"),
    }


def test_window_offsets_end_at_the_edge() -> None:
    assert window_offsets(50, 16, 16) == [0, 16, 32, 34]
    assert window_offsets(48, 16, 16) == [0, 16, 32]
    assert window_offsets(50, 16, 8) == [0, 8, 16, 24, 32, 34]
    assert window_offsets(16, 16, 16) == [0]
    with pytest.raises(ValueError, match="does not fit"):
        window_offsets(15, 16, 16)


def test_windows_cover_the_whole_area() -> None:
    covered = np.zeros((HEIGHT, WIDTH), dtype=int)
    for row, col in patch_windows(HEIGHT, WIDTH, 16, 16):
        assert 0 <= row <= HEIGHT - 16 and 0 <= col <= WIDTH - 16
        covered[row : row + 16, col : col + 16] += 1
    assert (covered > 0).all()


def test_kept_patches_cover_right_and_bottom_edges(tiled: dict) -> None:
    index = tiled["index"]
    assert set(index["row"]) == {0, 16, 32, 34}
    assert set(index["col"]) == {0, 16, 32, 48, 54}
    covered = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for row, col in zip(index["row"], index["col"], strict=True):
        covered[row : row + 16, col : col + 16] = True
    assert covered[-1, :].all() and covered[:, -1].all()
    assert (covered | (tiled["labels"] == 255)).all()


def test_min_valid_drops_unlabelled_patch(tiled: dict) -> None:
    index = tiled["index"]
    assert len(index) == 4 * 5 - 1
    assert (0, 0) not in set(zip(index["row"], index["col"], strict=True))
    assert (index["valid_fraction"] >= 0.5).all()
    # (0, 16) is fully valid
    first = index[(index["row"] == 0) & (index["col"] == 16)].iloc[0]
    assert first["valid_fraction"] == 1.0


def test_patch_store_and_random_access(tiled: dict) -> None:
    images, labels, index = tiled["images_npy"], tiled["labels_npy"], tiled["index"]
    # the area's pixels once (70 x 50 px), bands last; patches are windows of it
    assert images.dtype == np.float32 and images.shape == (50, 70, BANDS)
    assert labels.dtype == np.uint8 and labels.shape == (50, 70)
    assert isinstance(images, np.memmap)
    rec = index[(index["row"] == 34) & (index["col"] == 54)].iloc[0]
    r, c = 34, 54
    patch = window_image(images, int(rec["row"]), int(rec["col"]), int(rec["size"]))
    np.testing.assert_array_equal(patch, tiled["image"][:, r : r + 16, c : c + 16])
    expected = tiled["labels"][r : r + 16, c : c + 16].copy()
    expected[40 - r, 60 - c] = 255  # NaN in one band
    np.testing.assert_array_equal(window_labels(labels, r, c, 16), expected)
    assert rec["valid_fraction"] == pytest.approx(255 / 256)
    for k, name in enumerate(NAMES):
        assert rec[f"count_{name}"] == (expected == k).sum()


@pytest.mark.parametrize("stride", [16, 8, 4])
def test_store_holds_each_pixel_once_whatever_the_stride(tmp_path: Path, stride: int) -> None:
    image, labels = make_arrays()
    index = tile(tmp_path, *write_aligned(tmp_path, image, labels), stride=stride)
    paths = outputs(tmp_path)
    pixels = image.size * np.dtype(np.float32).itemsize  # the area's pixels, all bands
    stored = paths["out_images"].stat().st_size + paths["out_labels"].stat().st_size
    assert stored <= 1.2 * pixels
    assert stride == 16 or len(index) > 19  # more patches than without overlap, the same store


def test_float16_store_keeps_reflectance(tmp_path: Path) -> None:
    image, labels = make_arrays()
    image /= 100_000  # reflectance-like, 0 to 0.3
    tile(tmp_path, *write_aligned(tmp_path, image, labels), dtype="float16")
    stored = np.load(outputs(tmp_path)["out_images"])
    assert stored.dtype == np.float16
    back = stored.astype(np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(image))
    np.testing.assert_allclose(back, image, atol=2.5e-4, equal_nan=True)  # reflectance < 1


def test_float16_store_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    image, labels = make_arrays()
    image[0, 5, 5] = 70000.0  # raw counts, not reflectance
    paths = write_aligned(tmp_path, image, labels)
    with pytest.raises(DataError, match=r"Area 'a1'.*70000.*imagery.scale.*patches.dtype"):
        tile(tmp_path, *paths, dtype="float16")
    assert_no_outputs(tmp_path)


def test_index_columns_and_footprints(tiled: dict) -> None:
    index = tiled["index"]
    assert index.crs == CRS
    expected = ["area", "patch", "row", "col", "size", "valid_fraction"]
    assert list(index.columns[:6]) == expected
    assert [c for c in index.columns if c.startswith("count_")] == [f"count_{n}" for n in NAMES]
    assert (index["area"] == "a1").all()
    assert list(index["patch"]) == list(range(len(index)))
    assert index["count_tree"].dtype == np.int64
    for rec in index.itertuples():
        left, top = TRANSFORM @ (rec.col, rec.row)
        assert rec.geometry.bounds == pytest.approx((left, top - 160, left + 160, top))


def test_patch_larger_than_area(tmp_path: Path) -> None:
    paths = write_aligned(tmp_path, *make_arrays())
    with pytest.raises(DataError, match=r"Area 'a1' is 70 x 50 px.*64 px.*patches.size"):
        tile(tmp_path, *paths, size=64, stride=64)
    assert_no_outputs(tmp_path)


def test_no_patch_kept(tmp_path: Path) -> None:
    image, labels = make_arrays()
    paths = write_aligned(tmp_path, image, np.full_like(labels, 255))
    with pytest.raises(DataError, match=r"Area 'a1'.*min_valid"):
        tile(tmp_path, *paths)
    assert_no_outputs(tmp_path)


def test_labels_made_for_other_classes(tmp_path: Path) -> None:
    paths = write_aligned(tmp_path, *make_arrays())
    with pytest.raises(DataError, match=r"Area 'a1'.*align_area"):
        tile(tmp_path, *paths, class_names=["tree", "water"])
    assert_no_outputs(tmp_path)


def test_chip_mosaic_patches_stay_inside_their_chip():
    # 2 x 3 chips of 20 x 30 px; patches of 16 every 8 px
    windows = chip_patch_windows(40, 90, (20, 30), 16, 8)
    assert windows == sorted(windows)  # row-major, as the strip reader needs
    for row, col in windows:
        assert row // 20 == (row + 15) // 20 and col // 30 == (col + 15) // 30
    # each chip is tiled as its own grid: offsets 0, 4 down and 0, 8, 14 across
    assert len(windows) == 6 * 2 * 3
    assert {(r % 20, c % 30) for r, c in windows} == {(r, c) for r in (0, 4) for c in (0, 8, 14)}
    assert chip_patch_windows(40, 40, (20, 20), 20, 20) == [(0, 0), (0, 20), (20, 0), (20, 20)]
