"""k-fold cross-validation over spatial blocks: the assignment and each fold's split.

The workflow's folds (planned and run through `snakemake`): tests/workflow/test_folds_workflow.py.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

from landcover.errors import ConfigError, DataError
from landcover.prepare.folds import (
    assign_folds,
    block_folds,
    check_folds,
    fold_names,
    fold_number,
    fold_split,
    kfold_split,
)
from landcover.prepare.split import near_boxes, split_patches
from landcover.prepare.tiling import patch_windows

SIZE, STRIDE, BLOCK, BUFFER, VAL = 32, 32, 64, 8, 0.3
# name -> (origin x, origin y, height, width) in EPSG:32628, far apart
AREAS = {"a": (400_000, 1_800_000, 256, 256), "b": (450_000, 1_700_000, 192, 256)}


def area_index(name: str, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """An area's patch index as tile_area writes it, with uneven class counts."""
    x0, y0, height, width = AREAS[name]
    transform = Affine(10, 0, x0, 0, -10, y0)
    windows = patch_windows(height, width, SIZE, STRIDE)
    rows = np.array([w[0] for w in windows])
    cols = np.array([w[1] for w in windows])
    left, top = transform @ (cols, rows)
    water = rng.integers(0, 300, len(windows))
    frame = pd.DataFrame(
        {
            "area": name,
            "patch": np.arange(len(windows)),
            "row": rows,
            "col": cols,
            "size": SIZE,
            "valid_fraction": 1.0,
            "count_tree": SIZE * SIZE - water,
            "count_water": water,
        }
    )
    geometry = shapely.box(left, top - 10 * SIZE, left + 10 * SIZE, top)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:32628")


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    """The main split index (split_patches, method blocks) of the two areas."""
    rng = np.random.default_rng(0)
    paths = []
    for name in AREAS:
        path = tmp_path / name / "index.parquet"
        path.parent.mkdir()
        area_index(name, rng).to_parquet(path)
        paths.append(path)
    out = tmp_path / "index.parquet"
    split_patches(paths, out, [], "blocks", BLOCK, BUFFER, VAL, seed=1)
    return out


def test_fold_names_and_numbers():
    assert fold_names(3) == ["k0", "k1", "k2"]
    assert fold_number("k2", 3) == 2
    for bad in ("k3", "k01", "fold1", "lakeside"):
        with pytest.raises(ConfigError, match=r"evaluate\.folds"):
            fold_number(bad, 3)
    assert check_folds(4) == 4
    with pytest.raises(ConfigError, match=r"evaluate\.folds is not set.*`folds`"):
        check_folds(None)


def test_assignment_is_deterministic_for_a_seed():
    groups = ["a"] * 12 + ["b"] * 9
    weights = [4096] * 21  # equal sizes: only the seed orders them
    first = assign_folds(groups, weights, 4, seed=3)
    np.testing.assert_array_equal(first, assign_folds(groups, weights, 4, seed=3))
    assert not np.array_equal(first, assign_folds(groups, weights, 4, seed=4))


def test_every_fold_gets_a_unit_and_each_unit_one_fold():
    # two areas of one block each, and blocks without labelled pixels: still one each
    np.testing.assert_array_equal(sorted(assign_folds(["a", "b"], [0, 0], 2, seed=0)), [0, 1])
    rng = np.random.default_rng(1)
    groups = rng.choice(["a", "b", "c"], 7).tolist()
    folds = assign_folds(groups, rng.integers(0, 5000, 7), 7, seed=2)
    assert sorted(folds.tolist()) == list(range(7))  # seven units, seven folds: one each
    with pytest.raises(ConfigError, match=r"evaluate\.folds: 5 folds of 4 spatial blocks"):
        assign_folds(["a"] * 4, [1, 2, 3, 4], 5, seed=0)


def test_folds_are_balanced_by_pixels_and_spread_each_area():
    rng = np.random.default_rng(5)
    groups = ["a"] * 30 + ["b"] * 12 + ["c"] * 3
    weights = rng.integers(100, 4096, len(groups))
    folds = assign_folds(groups, weights, 4, seed=0)
    totals = np.bincount(folds, weights=weights, minlength=4)
    assert totals.max() - totals.min() <= weights.max()  # as even as the blocks allow
    frame = pd.DataFrame({"group": groups, "fold": folds})
    assert frame.groupby("group")["fold"].nunique().to_dict() == {"a": 4, "b": 4, "c": 3}


def test_units_are_the_blocks_of_each_area(index_path):
    index = gpd.read_parquet(index_path)
    units = block_folds(index, 3, seed=1)
    assert len(units) == index.groupby(["area", "block"]).ngroups
    expected = index[["count_tree", "count_water"]].sum(axis=1).groupby(index["area"]).sum()
    assert units.groupby("area")["pixels"].sum().to_dict() == expected.to_dict()


def test_fold_split_tests_its_blocks_and_buffers_them(index_path):
    index = gpd.read_parquet(index_path)
    tested = []
    for fold in range(3):
        out = fold_split(index, fold, 3, BUFFER, VAL, seed=1)
        assert set(out["split"]) == {"train", "val", "holdout", "buffer"}
        # no block in two folds: all the patches of a block share its fold
        assert (out.groupby(["area", "block"])["fold"].nunique() == 1).all()
        np.testing.assert_array_equal(out["split"] == "holdout", out["fold"] == fold)
        # validation blocks are other blocks; no train patch comes near a test or val one
        for area, rows in out.groupby("area"):
            boxes = shapely.box(rows["col"], rows["row"], rows["col"] + SIZE, rows["row"] + SIZE)
            train = boxes[(rows["split"] == "train").to_numpy()]
            held = boxes[rows["split"].isin(["holdout", "val"]).to_numpy()]
            assert len(near_boxes(train, held, BUFFER)) == 0, area
            assert (rows["split"] == "val").any(), area
        tested.append(out.index[out["split"] == "holdout"])
    # every patch is tested in exactly one fold
    every = np.concatenate(tested)
    assert len(every) == len(index) and len(set(every.tolist())) == len(index)


def test_fold_split_is_deterministic_and_keeps_the_index(index_path):
    index = gpd.read_parquet(index_path)
    a, b = fold_split(index, 1, 3, BUFFER, VAL, 1), fold_split(index, 1, 3, BUFFER, VAL, 1)
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    assert a.crs == index.crs
    kept = [c for c in index.columns if c != "split"]
    pd.testing.assert_frame_equal(pd.DataFrame(a[kept]), pd.DataFrame(index[kept]))


def test_kfold_split_writes_the_fold_index(index_path, tmp_path):
    out = tmp_path / "folds" / "k1" / "index.parquet"
    kfold_split(index_path, out, "k1", 3, BUFFER, VAL, seed=1)
    written = gpd.read_parquet(out)
    assert set(written.loc[written["split"] == "holdout", "fold"]) == {1}
    with pytest.raises(ConfigError, match=r"'k3' is not one of the 3 folds"):
        kfold_split(index_path, out, "k3", 3, BUFFER, VAL, seed=1)
    with pytest.raises(ConfigError, match=r"evaluate\.folds: 99 folds of \d+ spatial blocks"):
        kfold_split(index_path, out, "k1", 99, BUFFER, VAL, seed=1)
    gpd.read_parquet(index_path).drop(columns="block").to_parquet(tmp_path / "old.parquet")
    with pytest.raises(DataError, match=r"no `block` column.*split_patches"):
        kfold_split(tmp_path / "old.parquet", out, "k1", 3, BUFFER, VAL, seed=1)
