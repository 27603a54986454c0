"""Scoring maps against labels (evaluation.scoring): tables, streaming, held-out scope.

Maps and labels are tiny rasters written by code on one grid.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from landcover.classes import ClassMap
from landcover.errors import ConfigError, DataError
from landcover.evaluation import metrics as mt
from landcover.evaluation import scoring

CLASSES = [
    {"name": "a", "codes": [10], "colour": "#006400"},
    {"name": "b", "codes": [20, 21], "colour": "#FFBB22"},
    {"name": "c", "codes": [30], "colour": "#0064C8"},
]
NAMES = ["a", "b", "c"]
KL = {"kl_patch": 64, "kl_eps": 1e-8}  # the schema's defaults (evaluate.kl_patch, kl_eps)
X = 255  # ignore / nodata in class indices


TRANSFORM = Affine(10, 0, 300000, 0, -10, 1600000)


def write(path, data, nodata, tags=None, transform=TRANSFORM):
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "height": data.shape[0],
        "width": data.shape[1],
        "crs": "EPSG:32628",
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.uint8), 1)
        dst.update_tags(**(tags or {}))
    return path


def scene(seed=0, shape=(37, 53)):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 2, shape).astype(np.uint8)  # classes a and b only
    ref[:3] = X
    pred = ref.copy()
    flip = rng.random(shape) < 0.2
    pred[flip] = rng.integers(0, 3, flip.sum())
    pred[ref == X] = X
    pred[-1, :5] = X  # unmapped
    return ref, pred


CODES = np.array([10, 20, 30], np.uint8)


def as_codes(pred):
    return np.where(pred == X, 0, CODES[np.minimum(pred, 2)]).astype(np.uint8)


def outputs(tmp_path):
    d = tmp_path / "eval"
    return {
        "out_per_class": d / "per_class_iou.csv",
        "out_metrics": d / "metrics.json",
        "out_confusion": d / "confusion.csv",
    }


def test_evaluate_writes_tables_from_maps_in_codes(tmp_path):
    ref, pred = scene()
    labels = write(tmp_path / "labels.tif", ref, X)
    tags = {"values": "codes", "classes": json.dumps(NAMES)}
    m = write(tmp_path / "area.tif", as_codes(pred), 0, tags)
    out = outputs(tmp_path)
    metrics = scoring.evaluate(
        [m],
        [labels],
        classes=CLASSES,
        areas=["area"],
        experiment="e",
        device="cpu",
        kl_patch=8,
        kl_eps=1e-6,
        **out,
    )
    cm = mt.confusion_matrix(ref, pred, 3)
    table = pd.read_csv(out["out_per_class"])
    assert list(table.columns[:7]) == [
        "class",
        "index",
        "iou",
        "precision",
        "recall",
        "f1",
        "support",
    ]
    assert list(table["support"]) == cm.sum(1).tolist()
    assert math.isnan(table["iou"][2])  # c absent from the reference
    np.testing.assert_allclose(table["iou"][:2], mt.class_scores(cm)["iou"][:2], atol=1e-6)
    confusion = pd.read_csv(out["out_confusion"], index_col="reference")
    np.testing.assert_array_equal(confusion.to_numpy(), cm)
    assert list(confusion.columns) == NAMES
    saved = json.loads(out["out_metrics"].read_text())
    assert saved["miou"] == pytest.approx(mt.mean_iou(cm))
    assert saved["per_class_iou"]["c"] is None
    assert saved["unmapped_pixels"] == 5
    assert saved["kl_divergence"] == pytest.approx(mt.patch_kl(ref, pred, 3, 8, 1e-6).mean())
    assert saved["kl_patches"] == 5 * 7
    assert saved["per_area"]["area"]["pixels"] == cm.sum()
    assert saved["experiment"] == "e" and saved["device"] == "cpu"
    assert metrics["miou"] == saved["miou"]


def test_streaming_in_blocks_matches_one_read(tmp_path, monkeypatch):
    ref, pred = scene(seed=3, shape=(70, 45))
    labels = write(tmp_path / "labels.tif", ref, X)
    m = write(tmp_path / "m.tif", pred, X, {"values": "indices"})
    whole = scoring.score_area(m, labels, ClassMap.from_config(CLASSES), kl_patch=8, kl_eps=1e-8)
    monkeypatch.setattr(scoring, "BLOCK", 16)
    streamed = scoring.score_area(m, labels, ClassMap.from_config(CLASSES), kl_patch=8, kl_eps=1e-8)
    np.testing.assert_array_equal(whole[0], streamed[0])
    np.testing.assert_allclose(np.sort(whole[1]), np.sort(streamed[1]))
    assert whole[2] == streamed[2]


@pytest.fixture
def indexed(tmp_path):
    """A map 'm', its labels and a patch index holding out one of its 16 px patches."""
    ref, pred = scene(seed=1, shape=(32, 32))
    labels = write(tmp_path / "labels.tif", ref, X)
    m = write(tmp_path / "m.tif", pred, X, {"values": "indices"})
    index = tmp_path / "index.parquet"
    pd.DataFrame(
        {
            "area": ["m", "m", "other"],
            "row": [16, 0, 0],
            "col": [0, 16, 0],
            "size": [16, 16, 16],
            "split": ["holdout", "train", "holdout"],
        }
    ).to_parquet(index)
    return {"ref": ref, "pred": pred, "labels": labels, "map": m, "index": index}


def test_held_out_blocks_from_the_patch_index(indexed, tmp_path):
    ref, pred, index = indexed["ref"], indexed["pred"], indexed["index"]
    out = outputs(tmp_path)
    metrics = scoring.evaluate(
        [indexed["map"]], [indexed["labels"]], classes=CLASSES, index=index, **KL, **out
    )
    cm = mt.confusion_matrix(ref[16:, :16], pred[16:, :16], 3)
    assert metrics["pixels"] == cm.sum()
    assert metrics["per_area"]["m"]["scope"] == "1 patches"


def test_holdout_area_is_scored_whole_even_with_an_index(indexed, tmp_path):
    ref, pred, index = indexed["ref"], indexed["pred"], indexed["index"]
    out = outputs(tmp_path)
    metrics = scoring.evaluate(
        [indexed["map"]],
        [indexed["labels"]],
        classes=CLASSES,
        index=index,
        holdout=["m"],
        **KL,
        **out,
    )
    assert metrics["pixels"] == mt.confusion_matrix(ref, pred, 3).sum()


def test_map_off_the_labels_grid_is_a_data_error(tmp_path):
    ref, pred = scene()
    labels = write(tmp_path / "labels.tif", ref, X)
    m = write(
        tmp_path / "m.tif",
        pred,
        X,
        {"values": "indices"},
        transform=Affine(10, 0, 300010, 0, -10, 1600000),
    )
    with pytest.raises(DataError, match=r"not on the grid of the labels.*rerun predict_area"):
        scoring.evaluate([m], [labels], classes=CLASSES, **KL, **outputs(tmp_path))
    assert not (tmp_path / "eval").exists() or not any((tmp_path / "eval").iterdir())


def test_map_of_other_classes_is_a_data_error(tmp_path):
    ref, pred = scene()
    labels = write(tmp_path / "labels.tif", ref, X)
    m = write(tmp_path / "m.tif", pred, X, {"values": "indices", "classes": '["x", "y", "z"]'})
    with pytest.raises(DataError, match="made for classes"):
        scoring.evaluate([m], [labels], classes=CLASSES, **KL, **outputs(tmp_path))


def test_bad_inputs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="one map per area"):
        scoring.evaluate(["a.tif"], [], classes=CLASSES, **KL, **outputs(tmp_path))
    with pytest.raises(ConfigError, match="no maps"):
        scoring.evaluate([], [], classes=CLASSES, **KL, **outputs(tmp_path))
