"""The map writer (mapping.writer): labels, confidence, class values, GDAL's cache."""

from __future__ import annotations

import numpy as np
import pytest

from landcover.classes import ClassMap
from landcover.errors import ConfigError
from landcover.io import GDAL_CACHE_MB, gdal_env
from landcover.mapping.writer import class_values, labels_from_probs


def test_labels_take_the_first_of_equal_maxima():
    probs = np.array([[[0.2, 0.5]], [[0.5, 0.5]], [[0.3, 0.0]]], np.float32)  # (3, 1, 2)
    values, conf = labels_from_probs(
        probs, np.array([[True, False]]), np.array([10, 80, 50], np.uint8), 0
    )
    assert values.tolist() == [[80, 0]] and conf.tolist() == [[50, 255]]
    values, _ = labels_from_probs(probs, np.ones((1, 2), bool), np.array([10, 80, 50], np.uint8), 0)
    assert values.tolist() == [[80, 10]]  # a tie goes to the first class, as argmax does


def test_gdal_cache_is_bounded_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    assert gdal_env(3) == {"GDAL_CACHEMAX": GDAL_CACHE_MB, "GDAL_NUM_THREADS": "3"}
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
    assert gdal_env(3) == {}


def test_codes_that_do_not_fit_uint8_are_a_config_error():
    big = ClassMap.from_config([{"name": "a", "codes": [300], "colour": "#000000"}])
    with pytest.raises(ConfigError, match="values: indices"):
        class_values(big, "codes")
