"""Leave-one-area-out through the `snakemake` command: folds, errors, a tiny run.

Dry runs plan one fold per area and stop on a config error before any job; the `loao`
target runs on two tiny areas.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import yaml

from landcover.evaluation.loao import MEAN_ROW


def one_area_config(tiny_config) -> dict:
    """The tiny config with the switch on but a single area."""
    config = tiny_config(evaluate={"leave_one_area_out": True}, holdout=[])
    config["areas"] = {"city": config["areas"]["city"]}
    config["split"]["method"] = "blocks"
    return config


@pytest.mark.slow
def test_dry_run_plans_one_fold_per_area(tmp_path, tiny_config, run_snakemake, job_counts):
    config = tiny_config(evaluate={"leave_one_area_out": True})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    n, experiments = len(config["areas"]), ["unet", "pixel"]  # the default experiments
    for rule in ("loao_split_patches", "fold_class_weights"):  # one split per fold
        assert counts[rule] == n, rule
    for rule in ("fold_train_model", "fold_predict_area", "fold_evaluate"):
        assert counts[rule] == n * len(experiments), rule
    assert counts["fold_summary"] == len(experiments)
    assert counts["train_model"] == len(experiments) and counts["tile_area"] == n  # shared
    for area in config["areas"]:
        for experiment in experiments:
            assert f"results/loao/{area}/eval/{experiment}/cpu/per_class_iou.csv" in run.stdout
    assert "results/loao/unet/cpu/summary.csv" in run.stdout


@pytest.mark.slow
def test_an_area_without_labels_is_no_fold(tmp_path, tiny_config, run_snakemake, job_counts):
    """Leave-one-area-out and k-fold run over the labelled areas only; the area without
    labels is aligned (imagery alone) and mapped by each experiment, never tiled."""
    config = tiny_config(evaluate={"leave_one_area_out": True, "folds": 2})
    config["areas"]["lakeside"]["labelled"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n", "all", "folds")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    labelled, experiments = ["city", "delta"], ["unet", "pixel"]
    k, n, e = 2, len(labelled), len(experiments)
    assert counts["tile_area"] == n and counts["align_area"] == n
    assert counts["align_image"] == 1  # the area without labels: imagery alone
    assert counts["kfold_split"] == k and counts["loao_split_patches"] == n
    assert counts["fold_train_model"] == (k + n) * e
    assert counts["fold_predict_area"] == (k * n + n) * e  # k-fold maps every labelled area
    assert counts["fold_summary"] == 2 * e
    for area in labelled:
        assert f"results/loao/{area}/eval/unet/cpu/per_class_iou.csv" in run.stdout
    assert "results/loao/lakeside/" not in run.stdout
    assert "results/folds/k1/eval/unet/cpu/per_class_iou.csv" in run.stdout
    assert "results/folds/k2/" not in run.stdout
    for experiment in experiments:  # mapped by the main experiments, never scored
        assert f"results/maps/{experiment}/cpu/lakeside.tif" in run.stdout
    assert "results/eval/unet/cpu/lakeside" not in run.stdout


@pytest.mark.slow
def test_fewer_than_two_areas_fails_before_any_job(tmp_path, tiny_config, run_snakemake):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(one_area_config(tiny_config)))
    run = run_snakemake(tmp_path, "-n")
    assert run.returncode != 0
    assert "evaluate.leave_one_area_out needs at least 2 areas" in run.stdout + run.stderr
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_loao_target_with_the_switch_off_fails_the_same_way(tmp_path, tiny_config, run_snakemake):
    config = one_area_config(tiny_config)
    config["evaluate"]["leave_one_area_out"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n", "loao")
    assert run.returncode != 0
    assert "evaluate.leave_one_area_out needs at least 2 areas" in run.stdout + run.stderr
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_loao_target_runs_on_two_tiny_areas(tmp_path, tiny_config, run_snakemake):
    config = tiny_config(evaluate={})
    config["areas"] = {name: config["areas"][name] for name in ("lakeside", "city")}
    # blocks holds out no area in the main run; each fold still holds out its area whole
    config.update(holdout=[], split={**config["split"], "method": "blocks"})
    config["training"] = {**config["training"], "epochs": 1}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "loao")
    assert run.returncode == 0, run.stderr[-4000:]
    assert (tmp_path / "results/loao/pixel/cpu/summary.csv").exists()  # the baseline too
    summary = pd.read_csv(tmp_path / "results/loao/unet/cpu/summary.csv")
    assert sorted(summary["holdout"][:-1]) == ["city", "lakeside"]
    assert summary["holdout"].iloc[-1] == MEAN_ROW
    assert len([c for c in summary.columns if c.startswith("iou_")]) == len(config["classes"])
    assert (summary["pixels"] > 0).all()
    for area in ("lakeside", "city"):
        index = gpd.read_parquet(tmp_path / f"results/loao/{area}/patches/index.parquet")
        assert set(index.loc[index["area"] == area, "split"]) == {"holdout"}
        assert "val" in set(index.loc[index["area"] != area, "split"])
        assert (tmp_path / f"results/loao/{area}/maps/unet/cpu/{area}.tif").exists()
    assert not (tmp_path / "results/models").exists()  # the main chain was not run
