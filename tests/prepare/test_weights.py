"""Class weights: the three methods against hand-computed values, absent classes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from landcover.errors import ConfigError, DataError
from landcover.prepare.weights import class_weights, compute_class_weights

NAMES = ["tree", "built_up", "water", "mangroves"]
# Per-patch pixel counts of the train patches; "mangroves" is absent.
COUNTS = np.array([[10, 0, 30, 0], [0, 20, 10, 0]])  # totals 10, 20, 40, 0; patch sums 40, 30


def no_warnings(counts: np.ndarray, method: str, **kwargs: object) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_class_weights(counts, method, **({"beta": 0.9999} | kwargs))  # type: ignore[arg-type]


def test_inverse_frequency() -> None:
    # w_i = 70 / (3 * n_i)
    expected = [70 / 30, 70 / 60, 70 / 120, 0]
    np.testing.assert_allclose(no_warnings(COUNTS, "inverse_frequency"), expected)


def test_sqrt_inverse_frequency() -> None:
    expected = np.sqrt([70 / 30, 70 / 60, 70 / 120, 0])
    np.testing.assert_allclose(no_warnings(COUNTS, "sqrt_inverse_frequency"), expected)


@pytest.mark.parametrize("method", ["inverse_frequency", "median_frequency", "effective_number"])
def test_max_weight_caps_every_method_and_keeps_absent_classes_at_zero(method: str) -> None:
    plain = no_warnings(COUNTS, method)
    capped = no_warnings(COUNTS, method, max_weight=1.0)
    np.testing.assert_allclose(capped, np.minimum(plain, 1.0))
    assert capped[3] == 0 and capped.max() <= 1.0


def test_median_frequency() -> None:
    # f = [10/40, 20/30, 40/70] (water appears in both patches: 40 + 30 px); median 4/7
    f = np.array([0.25, 2 / 3, 4 / 7])
    expected = [(4 / 7) / 0.25, (4 / 7) / (2 / 3), 1.0, 0]
    assert np.median(f) == pytest.approx(4 / 7)
    np.testing.assert_allclose(no_warnings(COUNTS, "median_frequency"), expected)


def test_effective_number() -> None:
    # beta = 0.9: raw w = 0.1 / (1 - 0.9**n) for n = 10, 20, 40, scaled to sum to 3
    raw = [0.1 / (1 - 0.3486784401), 0.1 / (1 - 0.12157665459), 0.1 / (1 - 0.01478088294)]
    expected = [*(3 * np.array(raw) / sum(raw)), 0]
    got = no_warnings(COUNTS, "effective_number", beta=0.9)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert got[:3].sum() == pytest.approx(3)


def test_effective_number_default_beta_is_close_to_inverse_frequency_for_few_pixels() -> None:
    counts = np.array([5, 10, 20])
    got = compute_class_weights(counts, "effective_number", beta=0.9999)
    assert got[0] > got[1] > got[2]
    np.testing.assert_allclose(got / got[2], [4, 2, 1], rtol=0.01)


def test_absent_class_gets_zero_and_a_warning() -> None:
    with pytest.warns(UserWarning, match="class 'mangroves' has no pixel in the train patches"):
        weights = compute_class_weights(COUNTS, "inverse_frequency", beta=0.9999, names=NAMES)
    assert weights[3] == 0


def test_unknown_weighting_method() -> None:
    with pytest.raises(ConfigError, match=r"class_weights\.method"):
        compute_class_weights(np.array([1, 2]), "uniform", beta=0.9999)  # type: ignore[arg-type]


def test_beta_of_one() -> None:
    with pytest.raises(ConfigError, match=r"class_weights\.beta"):
        compute_class_weights(np.array([1, 2]), "effective_number", beta=1.0)


def test_no_train_pixel() -> None:
    with pytest.raises(DataError, match="no train pixel"):
        compute_class_weights(np.zeros((2, 2)), "inverse_frequency", beta=0.9999)


def write_index(path: Path) -> None:
    frame = pd.DataFrame(COUNTS, columns=[f"count_{n}" for n in NAMES])
    frame["split"] = "train"
    other = pd.DataFrame([[500, 500, 500, 500]] * 3, columns=frame.columns[:4])
    other["split"] = ["val", "holdout", "buffer"]
    pd.concat([frame, other], ignore_index=True).to_parquet(path)


def test_class_weights_json_from_train_rows_only(tmp_path: Path) -> None:
    index, out = tmp_path / "index.parquet", tmp_path / "w" / "class_weights.json"
    write_index(index)
    with pytest.warns(UserWarning, match="mangroves"):
        class_weights(index, out, NAMES, "inverse_frequency", beta=0.9999)
    result = json.loads(out.read_text())
    assert result["method"] == "inverse_frequency"
    assert result["classes"] == NAMES
    assert result["counts"] == [10, 20, 40, 0]
    assert result["absent"] == ["mangroves"]
    assert result["max_weight"] is None
    np.testing.assert_allclose(result["weights"], [70 / 30, 70 / 60, 70 / 120, 0])
    with pytest.warns(UserWarning, match="mangroves"):
        class_weights(index, out, NAMES, "inverse_frequency", beta=0.9999, max_weight=2.0)
    capped = json.loads(out.read_text())
    assert capped["max_weight"] == 2.0
    np.testing.assert_allclose(capped["weights"], [2.0, 70 / 60, 70 / 120, 0])


def test_class_weights_missing_column(tmp_path: Path) -> None:
    index, out = tmp_path / "index.parquet", tmp_path / "class_weights.json"
    write_index(index)
    with pytest.raises(DataError, match=r"count_snow.*split_patches"):
        class_weights(index, out, [*NAMES, "snow"], "inverse_frequency", beta=0.9999)
    assert not out.exists()
