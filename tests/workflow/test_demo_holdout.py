"""The default demo holds out a fair test: a new place of a kind seen in training."""

from __future__ import annotations

from collections import Counter

import geopandas as gpd
import pytest
import yaml

from landcover.prepare.split import unseen_classes


@pytest.fixture(scope="module")
def demo(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


def test_every_landscape_occurs_twice_and_the_holdout_kind_is_trained_on(demo):
    kinds = Counter(area["landscape"] for area in demo["areas"].values())
    assert min(kinds.values()) >= 2, kinds
    trained = {a["landscape"] for n, a in demo["areas"].items() if n not in demo["holdout"]}
    assert {demo["areas"][n]["landscape"] for n in demo["holdout"]} <= trained


@pytest.mark.slow
def test_every_held_out_class_occurs_in_training(tmp_path, repo_root, demo, run_snakemake):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(demo))
    run = run_snakemake(tmp_path, "results/patches/index.parquet")
    assert run.returncode == 0, run.stdout + run.stderr
    index = gpd.read_parquet(tmp_path / "results/patches/index.parquet")
    counts = [c for c in index.columns if c.startswith("count_")]
    held_out = index.loc[index["split"] == "holdout", counts].sum()
    trained = index.loc[index["split"] == "train", counts].sum()
    assert (held_out > 0).sum() >= 5  # a held-out area with most of the demo's classes
    assert set(held_out[held_out > 0].index) <= set(trained[trained > 0].index)
    assert unseen_classes(index) == {}
    assert "none in a train patch" not in (tmp_path / "logs/split_patches.log").read_text()
