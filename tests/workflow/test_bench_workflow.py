"""The bench and run-time targets through the `snakemake` command: plans and a tiny bench."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import yaml

from landcover.models.segmentation import bench

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # the same plan on any machine


@pytest.fixture
def dry_run(repo_root, run_snakemake):
    """``dry_run(workdir, *args, cores=...)``: a dry run of the demo config, without GPUs."""

    def run(workdir, *args, cores):
        config = repo_root / "config" / "config.yaml"
        return run_snakemake(
            workdir, "-n", *args, config=config, cores=cores, env=NO_GPU, timeout=120
        )

    return run


@pytest.mark.slow
def test_bench_plans_one_job_per_engine_holding_every_core(tmp_path, dry_run, job_counts):
    cores = min(2, os.cpu_count() or 1)
    run = dry_run(tmp_path, "bench", cores=cores)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = job_counts(run.stdout)
    assert jobs["bench_engine"] == len(bench.thread_ladder(cores))
    for threads in bench.thread_ladder(cores):
        assert f"results/bench/engines/cpu{threads}.csv" in run.stdout
    assert "cuda0" not in run.stdout
    if cores > 1:  # each engine's job takes every core, so nothing runs beside it
        assert run.stdout.count(f"threads: {cores}") >= cores
    assert "results/bench/device_ladder.png" in run.stdout
    assert "train_model" not in jobs  # synthetic inputs: no data needed


@pytest.mark.slow
def test_runtime_table_comes_after_the_default_run(tmp_path, dry_run, job_counts):
    run = dry_run(tmp_path, "results/runtime/runtimes.png", cores=1)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = job_counts(run.stdout)
    assert jobs["collect_runtimes"] == 1 and jobs["plot_runtimes"] == 1
    assert "evaluate" in jobs and "plot_area" in jobs


@pytest.mark.slow
def test_bench_target_writes_the_table_and_both_figures(
    tmp_path, repo_root, defaults, run_snakemake
):
    tiny_model = defaults["model"] | {"encoder": "tu-mobilenetv3_small_050"}
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config.update(
        {
            "model": tiny_model,
            "patches": {"size": 32, "stride": 32, "min_valid": 0.5},
            "training": {"batch_size": 2},
        }
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "bench", cores=1, env=NO_GPU, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    devices = pd.read_csv(tmp_path / "results/bench/devices.csv")
    assert devices["engine"].tolist() == ["cpu1", "cpu1"]
    assert devices["encoder"].iloc[0] == tiny_model["encoder"]
    assert (devices["patches_per_s"] > 0).all() and devices["cpu_model"].notna().all()
    for figure in ("device_ladder.png", "cpu_scaling.png"):
        assert (tmp_path / "results/bench" / figure).stat().st_size > 0
    assert not (tmp_path / "resources").exists()  # no data was made
