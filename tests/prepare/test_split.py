"""Spatial split of the patch index: no leakage, determinism, holdout errors."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from scipy import ndimage

from landcover.errors import ConfigError
from landcover.prepare.split import near_boxes, split_patches, unseen_classes
from landcover.prepare.tiling import patch_windows

SIZE, STRIDE, BLOCK, BUFFER = 32, 24, 64, 8
# name -> (crs, origin x, origin y, height, width); "h" overlaps "a" (offset 100 px)
AREAS = {
    "a": ("EPSG:32628", 400_000, 1_800_000, 200, 200),
    "b": ("EPSG:32628", 450_000, 1_700_000, 160, 160),
    "h": ("EPSG:32628", 401_000, 1_799_000, 200, 200),
    "z": ("EPSG:32629", 300_000, 1_750_000, 120, 160),
}


def area_index(name: str) -> gpd.GeoDataFrame:
    crs, x0, y0, height, width = AREAS[name]
    transform = Affine(10, 0, x0, 0, -10, y0)
    windows = patch_windows(height, width, SIZE, STRIDE)
    rows = np.array([w[0] for w in windows])
    cols = np.array([w[1] for w in windows])
    left, top = transform @ (cols, rows)
    frame = pd.DataFrame(
        {
            "area": name,
            "patch": np.arange(len(windows)),
            "row": rows,
            "col": cols,
            "size": SIZE,
            "valid_fraction": 1.0,
            "count_tree": 100,
            "count_water": 24,
        }
    )
    geometry = shapely.box(left, top - 10 * SIZE, left + 10 * SIZE, top)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=crs)


@pytest.fixture
def indexes(tmp_path: Path) -> list[Path]:
    paths = []
    for name in AREAS:
        path = tmp_path / name / "index.parquet"
        path.parent.mkdir()
        area_index(name).to_parquet(path)
        paths.append(path)
    return paths


def split(indexes: list[Path], out: Path, **kwargs: object) -> gpd.GeoDataFrame:
    args = {
        "holdout": ["h"],
        "method": "areas+blocks",
        "block_size": BLOCK,
        "buffer": BUFFER,
        "val_fraction": 0.25,
        "seed": 42,
        **kwargs,
    }
    return split_patches(indexes=indexes, out=out, **args)


def evaluated_mask(
    frame: pd.DataFrame, shape: tuple[int, int], shift: tuple[int, int]
) -> np.ndarray:
    """Pixels of val/holdout windows, in a grid shifted by ``shift`` (row, col) px."""
    mask = np.zeros(shape, dtype=bool)
    for rec in frame[frame["split"].isin(["val", "holdout"])].itertuples():
        r0, c0 = rec.row + shift[0], rec.col + shift[1]
        r1, c1 = max(r0, 0), max(c0, 0)
        mask[r1 : max(r0 + rec.size, 0), c1 : max(c0 + rec.size, 0)] = True
    return mask


def assert_no_leak(result: pd.DataFrame, buffer: int) -> None:
    """No train pixel lies within ``buffer`` px of a val/holdout pixel (same grid family)."""
    for name in ("a", "b", "h", "z"):
        _, x0, y0, height, width = AREAS[name]
        shape = (height + 400, width + 400)  # room for neighbours' windows
        pad = 200
        near = np.zeros(shape, dtype=bool)
        for other in AREAS:
            if AREAS[other][0] != AREAS[name][0]:
                continue
            _, ox, oy, _, _ = AREAS[other]
            shift = (pad + (y0 - oy) // 10, pad + (ox - x0) // 10)
            near |= evaluated_mask(result[result["area"] == other], shape, shift)
        near = ndimage.maximum_filter(near, size=2 * buffer + 1)  # square dilation
        train = result[(result["area"] == name) & (result["split"] == "train")]
        for rec in train.itertuples():
            window = near[
                pad + rec.row : pad + rec.row + SIZE, pad + rec.col : pad + rec.col + SIZE
            ]
            assert not window.any(), f"train patch {name}:{rec.patch} leaks"


def test_output_columns_and_crs(indexes: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "index.parquet"
    split(indexes, out)
    result = gpd.read_parquet(out)
    assert result.crs == "EPSG:4326"
    assert {"area", "patch", "row", "col", "size", "crs", "split", "block"} <= set(result.columns)
    assert set(result["split"]) <= {"train", "val", "holdout", "buffer"}
    assert (result.loc[result["area"] == "z", "crs"] == "EPSG:32629").all()
    assert (result.loc[result["area"] == "h", "split"] == "holdout").all()
    bounds = result.geometry.bounds
    assert bounds["minx"].between(-20, -10).all() and bounds["maxy"].between(10, 20).all()


def test_no_leakage_areas_plus_blocks(indexes: list[Path], tmp_path: Path) -> None:
    result = split(indexes, tmp_path / "i.parquet")
    counts = result.groupby(["area", "split"]).size()
    for name in ("a", "b", "z"):
        assert counts.get((name, "val"), 0) >= 1
        assert counts.get((name, "train"), 0) >= 1
    assert counts.get(("a", "buffer"), 0) > 0  # next to val blocks and to area h
    assert_no_leak(result, BUFFER)


@pytest.mark.parametrize("buffer", [0, 1, 24])
def test_no_leakage_for_any_buffer(indexes: list[Path], tmp_path: Path, buffer: int) -> None:
    result = split(indexes, tmp_path / "i.parquet", buffer=buffer)
    assert_no_leak(result, buffer)


def test_buffer_is_exact_not_excessive() -> None:
    # windows of 32 px at col 0 (val) and col 40 (train): 8 px apart
    val = shapely.box([0], [0], [32], [32])
    train = shapely.box([40, 32, 20], [0, 0, 0], [72, 64, 52], [32, 32, 32])
    assert list(near_boxes(train[:1], val, 8)) == []
    assert list(near_boxes(train[:1], val, 9)) == [0]
    assert list(near_boxes(train[1:], val, 0)) == [1]  # touching: 0 px apart, overlap only
    assert list(near_boxes(train, val, 1)) == [1, 2]


def test_cross_area_guard(indexes: list[Path], tmp_path: Path) -> None:
    result = split(indexes, tmp_path / "i.parquet", method="areas", buffer=0)
    a = result[result["area"] == "a"]
    # area h starts 100 px right of and 100 px below area a's origin
    overlapping = (a["row"] + SIZE > 100) & (a["col"] + SIZE > 100)
    assert (a.loc[overlapping, "split"] == "buffer").all()
    assert (a.loc[~overlapping, "split"] == "train").all()
    assert (result.loc[result["area"] == "h", "split"] == "holdout").all()
    assert not (result["split"] == "val").any()  # "areas": validation uses the holdout


def test_blocks_method_ignores_holdout(indexes: list[Path], tmp_path: Path) -> None:
    result = split(indexes, tmp_path / "i.parquet", method="blocks")
    assert not (result["split"] == "holdout").any()
    for name in AREAS:
        assert (result.loc[result["area"] == name, "split"] == "val").any()
    assert_no_leak(result, BUFFER)


def test_deterministic_for_a_seed(indexes: list[Path], tmp_path: Path) -> None:
    first = split(indexes, tmp_path / "1.parquet", seed=7)
    second = split(indexes, tmp_path / "2.parquet", seed=7)
    pd.testing.assert_series_equal(first["split"], second["split"])
    others = [split(indexes, tmp_path / f"s{s}.parquet", seed=s)["split"] for s in range(3)]
    assert any(not o.equals(first["split"]) for o in others)


def test_undefined_holdout_area(indexes: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "index.parquet"
    with pytest.raises(ConfigError, match=r"holdout: area\(s\) \['nope'\].*`holdout`"):
        split(indexes, out, holdout=["h", "nope"])
    assert not out.exists()
    assert not list(tmp_path.glob(".index*"))


def test_unknown_method(indexes: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"split\.method"):
        split(indexes, tmp_path / "i.parquet", method="random")


def test_unseen_classes_names_classes_scored_but_never_trained_on() -> None:
    index = pd.DataFrame(
        {
            "split": ["train", "train", "val", "holdout", "buffer"],
            "count_water": [5, 0, 3, 2, 0],
            "count_tree": [0, 0, 0, 7, 9],
            "count_crop": [1, 0, 0, 0, 0],
        }
    )
    assert unseen_classes(index) == {"tree": 7}
    index.loc[0, "count_tree"] = 1
    assert unseen_classes(index) == {}
