"""Folders of PNG image and mask chips (kind chips) through the whole chain."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import rasterio
import yaml

from landcover.sources.demo.craters import write_crater_chips

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_chip_folders_are_trained_mapped_and_scored(tmp_path, tiny_config, run_snakemake):
    write_crater_chips(tmp_path / "resources/chips", {"train": 12, "test": 4}, size=32)
    ready = yaml.safe_load((ROOT / "config" / "chips.yaml").read_text())
    config = tiny_config(**{k: ready[k] for k in ("areas", "holdout", "imagery", "labels")})
    config.update(classes=ready["classes"], ignore_codes=ready["ignore_codes"])
    config.update(
        patches={"size": 32, "stride": 32, "min_valid": 0.5},
        split={**ready["split"], "block_size": 32},
        predict={"window": 32, "overlap": 0, "batch_size": 4},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "per_class_iou", "maps")
    assert run.returncode == 0, run.stderr[-4000:]
    index = pd.read_parquet(tmp_path / "results/patches/index.parquet")
    assert len(index[index["area"] == "train"]) == 12  # one patch per chip
    with rasterio.open(tmp_path / "results/maps/pixel/cpu/test.tif") as ds:
        assert ds.crs is None and (ds.width, ds.height) == (64, 64)  # 2 x 2 chips of 32 px
    with rasterio.open(tmp_path / "results/aligned/test/labels.tif") as ds:
        assert list(json.loads(ds.tags()["chips"])) == [f"chip{i:03d}" for i in range(4)]
    metrics = json.loads((tmp_path / "results/eval/pixel/cpu/metrics.json").read_text())
    assert metrics["miou"] > 0.5
    # each test chip's class proportions, reference and predicted, and the mean KL
    table = pd.read_csv(tmp_path / "results/eval/pixel/cpu/proportions.csv")
    chips = table[table["chip"] != "mean"]
    assert list(chips["chip"]) == [f"chip{i:03d}" for i in range(4)]
    assert (chips[["ref_ground", "ref_crater"]].sum(axis=1).round(6) == 1).all()
    assert (chips["kl"] >= 0).all()
    assert table.iloc[-1]["kl"] == pytest.approx(chips["kl"].mean())
