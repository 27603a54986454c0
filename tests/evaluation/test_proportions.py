"""Class proportions of chips and their KL against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landcover.evaluation.proportions import chip_rows, proportions

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
    assert "kl" not in second and "ref_ground" not in second
    assert second["pred_crater"] == pytest.approx(0.75)


def test_kl_of_a_wrong_chip():
    reference = np.array([[1, 1], [1, 1]], np.uint8)
    prediction = np.array([[0, 0], [0, 1]], np.uint8)
    (row,) = chip_rows(reference, prediction, {"c": "c.png"}, (2, 2), NAMES, eps=1e-3)
    eps = 1e-3
    expected = (0 + eps) * math.log(eps / (0.75 + eps)) + (1 + eps) * math.log(
        (1 + eps) / (0.25 + eps)
    )
    assert row["kl"] == pytest.approx(expected)
