"""Class proportions of chips and their KL against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from landcover.evaluation.proportions import chip_rows, mean_row, proportions

NAMES = ["ground", "crater"]


def test_proportions_leave_out_ignored_pixels():
    values = np.array([[0, 0, 1, 255]], np.uint8)
    np.testing.assert_allclose(proportions(values, 2), [2 / 3, 1 / 3])
    np.testing.assert_array_equal(proportions(np.full((2, 2), 255, np.uint8), 2), [0, 0])


def test_chip_rows_by_hand():
    # two 2 x 2 chips side by side; the second has no labelled pixel (a test chip)
    reference = np.array([[0, 1, 255, 255], [0, 255, 255, 255]], np.uint8)
    prediction = np.array([[0, 0, 1, 1], [1, 1, 0, 1]], np.uint8)
    chips = {"a": "a.png", "b": "b.png"}
    first, second = chip_rows(reference, prediction, chips, (2, 2), NAMES, eps=1e-8)
    # chip a: labelled pixels (0,0)=0, (0,1)=1, (1,0)=0 -> y = [2/3, 1/3]; their
    # predictions 0, 0, 1 -> y_hat = [2/3, 1/3]: KL 0
    assert first["ref_ground"] == pytest.approx(2 / 3) and first["pred_crater"] == pytest.approx(
        1 / 3
    )
    assert first["kl"] == pytest.approx(0.0, abs=1e-12)
    # chip b: no reference; predicted over all its pixels: 1, 1, 0, 1
    assert first["scored"] and not second["scored"]
    assert math.isnan(second["kl"]) and math.isnan(second["ref_ground"])
    assert second["pred_crater"] == pytest.approx(0.75)


def test_chips_without_labels_are_listed_unscored_and_left_out_of_the_mean():
    # a labelled mosaic of two chips (KL 0 and KL > 0), then a mosaic without labels
    reference = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], np.uint8)
    prediction = np.array([[0, 1, 0, 0], [0, 0, 0, 1]], np.uint8)
    scored = chip_rows(reference, prediction, {"a": "a.png", "b": "b.png"}, (2, 2), NAMES, 1e-8)
    unlabelled = np.array([[1, 1, 0, 0], [1, 1, 0, 1]], np.uint8)
    rows = chip_rows(None, unlabelled, {"u": "u.png", "v": "v.png"}, (2, 2), NAMES, 1e-8)
    table = pd.DataFrame([{"area": "test", **r} for r in scored] + rows)
    assert table["scored"].tolist() == [True, True, False, False]
    u, v = rows
    assert u["pred_crater"] == pytest.approx(1.0) and v["pred_crater"] == pytest.approx(0.25)
    assert all(math.isnan(r[k]) for r in rows for k in ("kl", "ref_ground", "ref_crater"))
    # the mean is over the scored chips only: (0 + KL of b) / 2
    assert scored[0]["kl"] == pytest.approx(0.0, abs=1e-12) and scored[1]["kl"] > 0
    assert mean_row(table)["kl"] == pytest.approx((scored[0]["kl"] + scored[1]["kl"]) / 2)
    assert math.isnan(mean_row(table[~table["scored"]])["kl"])


def test_kl_of_a_wrong_chip():
    reference = np.array([[1, 1], [1, 1]], np.uint8)
    prediction = np.array([[0, 0], [0, 1]], np.uint8)
    (row,) = chip_rows(reference, prediction, {"c": "c.png"}, (2, 2), NAMES, eps=1e-3)
    eps = 1e-3
    expected = (0 + eps) * math.log(eps / (0.75 + eps)) + (1 + eps) * math.log(
        (1 + eps) / (0.25 + eps)
    )
    assert row["kl"] == pytest.approx(expected)
