"""Metrics (evaluation.metrics) on hand-made confusion cases, and the KL divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landcover.evaluation import metrics as mt

NAMES = ["a", "b", "c"]
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
