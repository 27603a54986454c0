"""Folders of PNG image and mask chips (kind chips) through the whole chain, with a folder
of image chips without masks (an area with `labelled: false`) mapped beside them."""

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
    chips = tmp_path / "resources/chips"
    write_crater_chips(chips, {"train": 12, "test": 4}, size=32, unlabelled={"unlabelled": 3})
    ready = yaml.safe_load((ROOT / "config" / "chips.yaml").read_text())
    assert ready["areas"]["unlabelled"]["labelled"] is False
    assert not (chips / "unlabelled" / "masks").exists()  # no mask folder at all
    config = tiny_config(**{k: ready[k] for k in ("areas", "holdout", "imagery", "labels")})
    config.update(classes=ready["classes"], ignore_codes=ready["ignore_codes"])
    config.update(
        patches={"size": 32, "stride": 32, "min_valid": 0.5},
        split={**ready["split"], "block_size": 32},
        predict={"window": 32, "overlap": 0, "batch_size": 4},
        evaluate={"folds": 2},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    area_figure = "results/figures/pixel/cpu/area_unlabelled.png"
    folds = "results/folds/pixel/cpu/summary.csv"  # k-fold of the (quick) per-pixel kind
    targets = ("per_class_iou", "maps", "results/experiments.csv", area_figure, folds)
    run = run_snakemake(tmp_path, *targets)
    assert run.returncode == 0, run.stderr[-4000:]
    index = pd.read_parquet(tmp_path / "results/patches/index.parquet")
    assert len(index[index["area"] == "train"]) == 12  # one patch per chip
    with rasterio.open(tmp_path / "results/maps/pixel/cpu/test.tif") as ds:
        assert ds.crs is None and (ds.width, ds.height) == (64, 64)  # 2 x 2 chips of 32 px
    with rasterio.open(tmp_path / "results/aligned/test/labels.tif") as ds:
        assert list(json.loads(ds.tags()["chips"])) == [f"chip{i:03d}" for i in range(4)]
    metrics = json.loads((tmp_path / "results/eval/pixel/cpu/metrics.json").read_text())
    assert metrics["miou"] > 0.5
    # the area without labels: mapped (3 chips of 32 px: a 2 x 2 mosaic) and drawn, its
    # imagery aligned alone; never tiled, trained on or scored
    with rasterio.open(tmp_path / "results/maps/pixel/cpu/unlabelled.tif") as ds:
        assert ds.crs is None and (ds.width, ds.height) == (64, 64)
    assert (tmp_path / area_figure).stat().st_size > 0
    assert (tmp_path / "results/aligned/unlabelled/image.tif").exists()
    assert not (tmp_path / "results/aligned/unlabelled/labels.tif").exists()
    assert not (tmp_path / "resources/raw/unlabelled/labels.tif").exists()
    assert not (tmp_path / "results/patches/unlabelled").exists()
    assert "unlabelled" not in set(index["area"])
    assert metrics["areas"] == ["test"] and list(metrics["per_area"]) == ["test"]
    board = pd.read_csv(tmp_path / "results/experiments.csv").set_index("experiment")
    assert board.loc["pixel", "pixels"] == metrics["pixels"]  # the test chips' pixels only
    # each test chip's class proportions, reference and predicted, and their KL; then the
    # unlabelled chips, predicted only; the mean KL is over the scored (test) chips only
    table = pd.read_csv(tmp_path / "results/eval/pixel/cpu/proportions.csv")
    rows = table[table["chip"] != "mean"]
    scored, unscored = rows[rows["area"] == "test"], rows[rows["area"] == "unlabelled"]
    assert list(scored["chip"]) == [f"chip{i:03d}" for i in range(4)]
    assert list(unscored["chip"]) == [f"chip{i:03d}" for i in range(3)]
    assert scored["scored"].astype(bool).all() and not unscored["scored"].astype(bool).any()
    assert (scored[["ref_ground", "ref_crater"]].sum(axis=1).round(6) == 1).all()
    assert (scored["kl"] >= 0).all()
    assert unscored[["ref_ground", "ref_crater", "kl"]].isna().all().all()
    assert (unscored[["pred_ground", "pred_crater"]].sum(axis=1).round(6) == 1).all()
    assert table.iloc[-1]["kl"] == pytest.approx(scored["kl"].mean())
    # each chip's map on its own (`maps` asks for them), its cell of the area's map
    chip_maps = tmp_path / "results/maps/pixel/cpu/test_chips"
    assert sorted(p.name for p in chip_maps.glob("*.tif")) == [f"chip{i:03d}.tif" for i in range(4)]
    with rasterio.open(tmp_path / "results/maps/pixel/cpu/test.tif") as ds:
        cell = ds.read(1, window=rasterio.windows.Window(32, 0, 32, 32))  # chip001
    with rasterio.open(chip_maps / "chip001.tif") as ds:
        assert (ds.width, ds.height) == (32, 32) and ds.crs is None
        assert (ds.read(1) == cell).all() and ds.tags()["chip"] == "chip001"
    assert len(list((tmp_path / "results/maps/pixel/cpu/unlabelled_chips").glob("*.tif"))) == 3
    # two folds dealing out the labelled chips (train and test areas), each trained and
    # scored; the summary's mean and spread per metric
    summary = pd.read_csv(tmp_path / folds)
    assert list(summary["fold"][:2]) == ["k0", "k1"], summary
    assert summary["miou"][:2].between(0, 1).all()
    mean = summary.set_index("fold").loc["mean"]
    assert mean["miou"] == pytest.approx(summary["miou"][:2].mean(), abs=1e-5)  # 6 digits
    assert mean["std_miou"] == pytest.approx(summary["miou"][:2].std(), abs=1e-5)
