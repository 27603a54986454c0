"""Experiments: named overrides and grids expanded to readable names."""

from __future__ import annotations

import pytest

from landcover.errors import ConfigError
from landcover.experiments import experiment_table

BASE = {
    "model": {"arch": "unet", "encoder": "resnet18", "encoder_weights": None},
    "training": {"lr": 0.001, "epochs": 10},
}


def test_no_experiments_gives_one_default_experiment():
    table = experiment_table(BASE, {})
    assert table == {"default": BASE}


def test_named_overrides_apply_on_top_of_the_base():
    table = experiment_table(BASE, {"base": {}, "fpn": {"model": {"arch": "fpn"}}})
    assert table["fpn"]["model"]["arch"] == "fpn"
    assert table["fpn"]["training"] == BASE["training"]
    assert table["base"]["model"]["arch"] == "unet"
    assert BASE["model"]["arch"] == "unet"  # the base is not modified


def test_grid_is_the_cartesian_product_with_readable_names():
    grid = {"model.arch": ["unet", "fpn"], "training.lr": [0.001, 0.0003]}
    table = experiment_table(BASE, {"base": {}}, grid)
    assert sorted(table) == [
        "base_arch-fpn_lr-0.0003",
        "base_arch-fpn_lr-0.001",
        "base_arch-unet_lr-0.0003",
        "base_arch-unet_lr-0.001",
    ]
    assert table["base_arch-fpn_lr-0.0003"]["training"]["lr"] == 0.0003
    assert table["base_arch-fpn_lr-0.0003"]["model"]["arch"] == "fpn"


@pytest.mark.parametrize(
    ("experiments", "grid", "message"),
    [
        ({"x": {"model": {"arhc": "fpn"}}}, None, r"experiments.x: 'model.arhc' is not a key"),
        ({"x": {"patches": {"size": 32}}}, None, r"'patches.size' is not an overridable key"),
        ({"x": {}}, {"training.lrr": [1]}, r"experiment_grid: 'training.lrr' is not a key"),
    ],
)
def test_unknown_keys_are_errors(experiments, grid, message):
    with pytest.raises(ConfigError, match=message):
        experiment_table(BASE, experiments, grid)
