"""k-fold cross-validation through the `snakemake` command: plans, errors, a tiny run.

Dry runs plan the folds' jobs (alone and beside leave-one-area-out) and stop on a
missing `evaluate.folds` before any job; the `folds` target runs on two tiny areas. The
assignment and the split of each fold: tests/prepare/test_folds.py.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import yaml

from landcover.evaluation.loao import MEAN_ROW

EXPERIMENTS = ["unet", "pixel"]  # the tiny config's


@pytest.mark.slow
def test_dry_run_plans_k_folds_in_the_default_target(
    tmp_path, tiny_config, run_snakemake, job_counts
):
    config = tiny_config(evaluate={"folds": 2})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    k, n, e = 2, len(config["areas"]), len(EXPERIMENTS)
    assert counts["kfold_split"] == counts["fold_class_weights"] == k
    assert counts["fold_train_model"] == counts["fold_evaluate"] == k * e
    assert counts["fold_predict_area"] == k * e * n  # every area, in every fold
    assert counts["fold_summary"] == e
    assert counts["split_patches"] == 1 and counts["tile_area"] == n  # shared
    assert "loao_split_patches" not in counts
    for fold in ("k0", "k1"):
        assert f"results/folds/{fold}/eval/unet/cpu/per_class_iou.csv" in run.stdout
        assert f"results/folds/{fold}/maps/pixel/cpu/delta.tif" in run.stdout
    assert "results/folds/unet/cpu/summary.csv" in run.stdout


@pytest.mark.slow
def test_folds_and_leave_one_area_out_share_the_rules(
    tmp_path, tiny_config, run_snakemake, job_counts
):
    config = tiny_config(evaluate={"folds": 3, "leave_one_area_out": True})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n", "folds", "loao")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    k, n, e = 3, len(config["areas"]), len(EXPERIMENTS)
    assert counts["kfold_split"] == k and counts["loao_split_patches"] == n
    assert counts["fold_train_model"] == (k + n) * e
    assert counts["fold_predict_area"] == (k * n + n) * e  # loao maps its held-out area
    assert counts["fold_summary"] == 2 * e
    assert "results/loao/unet/cpu/summary.csv" in run.stdout
    assert "results/folds/unet/cpu/summary.csv" in run.stdout


@pytest.mark.slow
def test_folds_target_without_evaluate_folds_fails_before_any_job(
    tmp_path, tiny_config, run_snakemake
):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(evaluate={})))
    run = run_snakemake(tmp_path, "-n", "folds")
    assert run.returncode != 0
    assert "evaluate.folds is not set" in run.stdout + run.stderr
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_folds_target_runs_on_two_tiny_areas(tmp_path, tiny_config, run_snakemake):
    config = tiny_config(evaluate={"folds": 2})
    config["areas"] = {name: config["areas"][name] for name in ("lakeside", "city")}
    config.update(holdout=[], split={**config["split"], "method": "blocks"})
    config["training"] = {**config["training"], "epochs": 1}
    config["experiments"] = {"pixel": {"model": {"kind": "pixel"}}}  # seconds per fold
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "folds")
    assert run.returncode == 0, run.stderr[-4000:]
    summary = pd.read_csv(tmp_path / "results/folds/pixel/cpu/summary.csv")
    assert summary["fold"].tolist() == ["k0", "k1", MEAN_ROW]
    assert (summary["pixels"] > 0).all() and summary["std_miou"].iloc[:-1].isna().all()
    assert len([c for c in summary.columns if c.startswith("iou_")]) == len(config["classes"])
    tested = []
    for k, fold in enumerate(("k0", "k1")):
        index = gpd.read_parquet(tmp_path / f"results/folds/{fold}/patches/index.parquet")
        assert (index.groupby(["area", "block"])["fold"].nunique() == 1).all()
        assert ((index["split"] == "holdout") == (index["fold"] == k)).all()
        assert {"train", "val", "holdout"} <= set(index["split"])
        tested.append(set(index.index[index["split"] == "holdout"]))
        metrics = json.loads(
            (tmp_path / f"results/folds/{fold}/eval/pixel/cpu/metrics.json").read_text()
        )
        # each area scored on the fold's test blocks, not over its whole scene
        assert all(s["scope"].endswith(" patches") for s in metrics["per_area"].values())
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == len(index)
    assert not (tmp_path / "results/models").exists()  # the main chain was not run
    run = run_snakemake(tmp_path, "folds", "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    assert "Cross-validation" in html and "k-fold cross-validation scores" in html
