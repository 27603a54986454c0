"""Experiments: named overrides and grids expanded to readable names."""

from __future__ import annotations

import pytest

from landcover.errors import ConfigError
from landcover.experiments import experiment_seed, experiment_table

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


ENSEMBLE_BASE = {
    "model": {"kind": "segmentation", "arch": "unet", "members": []},
    "training": {"lr": 0.001},
}
TWO = {"unet": {}, "pixel": {"model": {"kind": "pixel"}}}


def ensemble_of(*members: str) -> dict:
    return {"model": {"kind": "ensemble", "members": list(members)}}


def test_an_ensemble_names_other_experiments():
    table = experiment_table(ENSEMBLE_BASE, TWO | {"ensemble": ensemble_of("unet", "pixel")})
    assert table["ensemble"]["model"]["members"] == ["unet", "pixel"]
    assert table["unet"]["model"]["members"] == []


def test_in_a_grid_an_ensemble_averages_its_members_in_the_same_combination():
    experiments = TWO | {"ensemble": ensemble_of("unet", "pixel")}
    table = experiment_table(ENSEMBLE_BASE, experiments, {"training.lr": [0.1, 0.2]})
    assert table["ensemble_lr-0.2"]["model"]["members"] == ["unet_lr-0.2", "pixel_lr-0.2"]
    assert table["unet_lr-0.2"]["model"]["members"] == []


@pytest.mark.parametrize(
    ("experiments", "message"),
    [
        ({"ensemble": ensemble_of("unet")}, r"at least 2 different experiments"),
        ({"ensemble": ensemble_of()}, r"at least 2 different experiments"),
        ({"ensemble": ensemble_of("unet", "unet")}, r"each listed once"),
        ({"ensemble": ensemble_of("unet", "ensemble")}, r"'ensemble' is the ensemble itself"),
        ({"ensemble": ensemble_of("unet", "fpn")}, r"'fpn' is not an experiment"),
        (
            {"inner": ensemble_of("unet", "pixel"), "outer": ensemble_of("unet", "inner")},
            r"experiments.outer.model.members: 'inner' is itself an ensemble",
        ),
        (
            {"forgot": {"model": {"members": ["unet", "pixel"]}}},
            r"experiments.forgot.model.members is \['unet', 'pixel'\] but model.kind is "
            r"'segmentation'.*Set model.kind: ensemble",
        ),
    ],
)
def test_bad_ensemble_members_name_the_key_and_the_fix(experiments, message):
    with pytest.raises(ConfigError, match=r"experiments\.\w+\.model\.members") as error:
        experiment_table(ENSEMBLE_BASE, TWO | experiments)
    assert error.match(message)


def test_a_grid_that_makes_members_of_a_network_is_an_error():
    grid = {"model.kind": ["segmentation"]}  # the ensemble too becomes a network
    with pytest.raises(ConfigError, match=r"experiment_grid: experiments\.ensemble_kind-"):
        experiment_table(ENSEMBLE_BASE, TWO | {"ensemble": ensemble_of("unet", "pixel")}, grid)


def test_an_experiment_trains_with_its_own_seed_or_the_configs():
    base = {"model": {"arch": "unet"}, "training": {"lr": 0.01, "seed": None}}
    table = experiment_table(base, {"a": {}, "b": {"training": {"seed": 3}}})
    assert experiment_seed(table["a"], 42) == 42
    assert experiment_seed(table["b"], 42) == 3
