"""Evaluation: metrics on hand-made confusion cases, KL divergence, streamed scoring."""

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
from landcover.evaluation import scoring, tables

CLASSES = [
    {"name": "a", "codes": [10], "colour": "#006400"},
    {"name": "b", "codes": [20, 21], "colour": "#FFBB22"},
    {"name": "c", "codes": [30], "colour": "#0064C8"},
]
NAMES = ["a", "b", "c"]
KL = {"kl_patch": 64, "kl_eps": 1e-8}  # the schema's defaults (evaluate.kl_patch, kl_eps)
X = 255  # ignore / nodata in class indices

# c is absent from the reference; b is never predicted
REF = np.array([0, 0, 0, 0, 1, 1, X, 0])
PRED = np.array([0, 0, 0, 2, 0, 2, 1, X])
# pairs scored: (a,a) x3, (a,c), (b,a), (b,c); (X,b) ignored; (a,X) unmapped
CM = np.array([[3, 0, 1], [1, 0, 1], [0, 0, 0]])


def test_confusion_matrix_counts_pairs_and_skips_255():
    np.testing.assert_array_equal(mt.confusion_matrix(REF, PRED, 3), CM)


def test_class_absent_from_prediction_and_from_reference():
    s = mt.class_scores(CM)
    np.testing.assert_array_equal(s["support"], [4, 2, 0])
    np.testing.assert_array_equal(s["predicted"], [4, 0, 2])
    # a: tp 3, fp 1, fn 1
    assert s["iou"][0] == pytest.approx(3 / 5)
    assert s["precision"][0] == pytest.approx(3 / 4)
    assert s["recall"][0] == pytest.approx(3 / 4)
    assert s["f1"][0] == pytest.approx(6 / 8)
    # b: in the reference, never predicted -> IoU/recall/F1 0, precision undefined
    assert s["iou"][1] == 0 and s["recall"][1] == 0 and s["f1"][1] == 0
    assert math.isnan(s["precision"][1])
    # c: absent from the reference -> IoU/recall/F1 undefined; its false positives give precision 0
    assert math.isnan(s["iou"][2]) and math.isnan(s["recall"][2]) and math.isnan(s["f1"][2])
    assert s["precision"][2] == 0


def test_summary_averages_only_classes_in_the_reference():
    head = mt.summary(CM, NAMES)
    assert head["miou"] == pytest.approx((0.6 + 0.0) / 2)  # c excluded, b counts as 0
    assert head["macro_f1"] == pytest.approx((0.75 + 0.0) / 2)
    assert head["overall_accuracy"] == pytest.approx(3 / 6)
    assert head["pixels"] == 6
    assert head["classes_absent_from_reference"] == ["c"]
    assert head["classes_absent_from_prediction"] == ["b"]


def test_perfect_and_empty_matrices():
    assert mt.mean_iou(np.diag([5, 0, 2])) == 1.0
    assert math.isnan(mt.mean_iou(np.zeros((3, 3), int)))
    assert math.isnan(mt.overall_accuracy(np.zeros((3, 3), int)))


def test_per_class_table_has_a_row_for_every_class():
    table = mt.per_class_table(CM, NAMES)
    assert list(table["class"]) == NAMES
    assert list(table["support"]) == [4, 2, 0]
    assert table["iou"].isna().tolist() == [False, False, True]


def test_kl_divergence_by_hand():
    y, y_hat, eps = [0.5, 0.5, 0.0], [0.75, 0.25, 0.0], 0.01
    expected = 0.51 * math.log(0.51 / 0.76) + 0.51 * math.log(0.51 / 0.26) + 0.01 * math.log(1)
    assert float(mt.kl_divergence(y, y_hat, eps)) == pytest.approx(expected)
    assert float(mt.kl_divergence(y, y, 1e-8)) == pytest.approx(0.0)
    # a class missing from the prediction is penalised through eps
    assert float(mt.kl_divergence([1, 0], [0, 1], 1e-8)) == pytest.approx(
        (1 + 1e-8) * math.log((1 + 1e-8) / 1e-8) + 1e-8 * math.log(1e-8 / (1 + 1e-8))
    )


def test_patch_kl_skips_patches_without_labels():
    ref = np.array([[0, 0, X, X], [1, 1, X, X], [0, 0, 2, 2], [0, 0, 2, 2]])
    pred = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 2, 2], [0, 0, 2, 1]])
    kl = mt.patch_kl(ref, pred, 3, patch=2, eps=0.01)
    assert kl.shape == (3,)  # the top-right patch has no labelled pixels
    first = mt.kl_divergence([0.5, 0.5, 0], [0.75, 0.25, 0], 0.01)
    last = mt.kl_divergence([0, 0, 1], [0, 0.25, 0.75], 0.01)
    np.testing.assert_allclose(kl, [first, 0.0, last])


# --------------------------------------------------------------------------- files

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


def test_held_out_blocks_from_the_patch_index(tmp_path):
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
    out = outputs(tmp_path)
    metrics = scoring.evaluate([m], [labels], classes=CLASSES, index=index, **KL, **out)
    cm = mt.confusion_matrix(ref[16:, :16], pred[16:, :16], 3)
    assert metrics["pixels"] == cm.sum()
    assert metrics["per_area"]["m"]["scope"] == "1 patches"
    # a holdout area is scored over its whole scene even with an index
    metrics = scoring.evaluate(
        [m], [labels], classes=CLASSES, index=index, holdout=["m"], **KL, **out
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


def test_leaderboard_ranks_by_miou(tmp_path):
    paths = []
    for exp, miou in [("small", 0.4), ("big", 0.6), ("broken", None)]:
        p = tmp_path / exp / "cpu" / "metrics.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"experiment": exp, "device": "cpu", "miou": miou}))
        paths.append(p)
    table = tables.leaderboard(paths, tmp_path / "leaderboard.csv")
    assert list(table["experiment"]) == ["big", "small", "broken"]
    saved = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(saved["rank"]) == [1, 2, 3]
