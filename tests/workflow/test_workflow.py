"""The workflow through the `snakemake` command, on a tiny config in a tmp dir.

The ``workdir`` fixture runs the default target of the tiny config (the ``tiny_config``
fixture) once per module; dry runs check plans and config errors; lint and snakefmt
check the rules' text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rio_cogeo.cogeo import cog_validate


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_config, run_snakemake) -> Path:
    """The tiny config's default target run once: data, model, maps, scores, figures."""
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    run = run_snakemake(workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_data_half_outputs(workdir, tiny_config):
    tiny = tiny_config()
    areas = tiny["areas"]
    for area in areas:
        with (
            rasterio.open(workdir / f"results/aligned/{area}/image.tif") as image,
            rasterio.open(workdir / f"results/aligned/{area}/labels.tif") as labels,
        ):
            assert image.crs == labels.crs and image.crs.to_epsg() == 32628
            assert image.transform == labels.transform and image.shape == labels.shape
            assert image.count == len(tiny["imagery"]["bands"]) and image.dtypes[0] == "float32"
            assert labels.dtypes[0] == "uint8" and labels.nodata == 255
            values = labels.read(1)
            assert (values[values != 255] < 9).all()
            reflectance = image.read(1)
            assert np.nanmedian(reflectance) < 0.5  # scaled to reflectance, not DN
    index = gpd.read_parquet(workdir / "results/patches/index.parquet")
    assert index.crs.to_epsg() == 4326
    assert set(index.loc[index["area"] == "delta", "split"]) == {"holdout"}
    assert {"train", "val"} <= set(index.split)
    store = np.load(workdir / "results/patches/lakeside/images.npy", mmap_mode="r")
    with rasterio.open(workdir / "results/aligned/lakeside/image.tif") as image:
        assert store.shape == (image.height, image.width, 5)  # the area's pixels, once
    assert store.dtype == np.float16
    weights = json.loads((workdir / "results/patches/class_weights.json").read_text())
    assert len(weights["weights"]) == 9
    assert all(w >= 0 for w in weights["weights"])
    # the delta's labels came from two tiles
    tags = rasterio.open(workdir / "resources/raw/delta/labels.tif").tags()
    assert "N12W018" in json.dumps(tags) and "N15W018" in json.dumps(tags)


@pytest.mark.slow
def test_model_maps_scores_and_figures(workdir, tiny_config):
    tiny = tiny_config()
    history = (workdir / "results/models/unet/cpu/history.csv").read_text().splitlines()
    assert len(history) == 1 + tiny["training"]["epochs"]
    hardware = json.loads((workdir / "results/models/unet/cpu/hardware.json").read_text())
    assert hardware["device"] == "cpu"
    for area in tiny["areas"]:
        with (
            rasterio.open(workdir / f"results/maps/unet/cpu/{area}.tif") as map_,
            rasterio.open(workdir / f"results/aligned/{area}/labels.tif") as labels,
        ):
            assert map_.crs == labels.crs and map_.transform == labels.transform
            assert map_.colormap(1)[80][:3] == (0, 100, 200)  # WorldCover water colour
        assert (workdir / f"results/figures/unet/cpu/area_{area}.png").stat().st_size > 0
    table = (workdir / "results/eval/unet/cpu/per_class_iou.csv").read_text()
    assert len(table.strip().splitlines()) == 1 + 9  # one row per class, none hidden
    assert (workdir / "results/experiments.csv").exists()


@pytest.mark.slow
def test_the_leaderboard_carries_the_per_pixel_baseline(workdir, tiny_config):
    board = pd.read_csv(workdir / "results/experiments.csv")
    assert set(board["experiment"]) == {"unet", "pixel"}
    assert (workdir / "results/figures/leaderboard.png").stat().st_size > 0


@pytest.mark.slow
def test_the_per_pixel_map_is_a_cog_on_the_area_grid(workdir, tiny_config):
    for area in tiny_config()["areas"]:
        path = workdir / f"results/maps/pixel/cpu/{area}.tif"
        assert cog_validate(str(path))[0]
        with (
            rasterio.open(path) as map_,
            rasterio.open(workdir / f"results/maps/unet/cpu/{area}.tif") as unet,
        ):
            assert map_.profile == unet.profile and map_.tags()["experiment"] == "pixel"
            assert map_.colormap(1) == unet.colormap(1)
        assert (workdir / f"results/maps/pixel/cpu/{area}_confidence.tif").exists()
    history = pd.read_csv(workdir / "results/models/pixel/cpu/history.csv")
    assert {"epoch", "train_loss", "val_loss", "val_miou"} <= set(history.columns)


@pytest.mark.slow
def test_nothing_left_to_do_after_a_run(workdir, run_snakemake):
    run = run_snakemake(workdir, "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


@pytest.mark.slow
def test_a_deleted_class_style_reruns_its_map(workdir, run_snakemake, job_counts):
    style = workdir / "results/maps/unet/cpu/lakeside.qml"
    aside = workdir / "lakeside.qml.aside"
    style.rename(aside)
    try:
        run = run_snakemake(workdir, "maps", "-n")
    finally:
        aside.rename(style)
    assert run.returncode == 0, run.stderr[-3000:]
    assert job_counts(run.stdout).get("predict_area") == 1
    assert "align_area" not in job_counts(run.stdout)


@pytest.mark.slow
def test_rerunning_the_evaluation_target_runs_only_the_evaluation(workdir, run_snakemake):
    target = "results/eval/unet/cpu/per_class_iou.csv"
    run = run_snakemake(workdir, target, "-n", "--forcerun", "evaluate")
    jobs = run.stdout.split("Job stats:")[1].split("total")[0]
    assert "evaluate" in jobs
    assert not any(rule in jobs for rule in ("train_model", "predict_area", "align_area"))


@pytest.mark.slow
def test_changed_evaluation_parameter_reruns_only_the_evaluation(workdir, run_snakemake):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["evaluate"] = {"kl_patch": 16}
    (workdir / "kl16.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(workdir, "per_class_iou", "-n", config="kl16.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = run.stdout.split("Job stats:")[1].split("total")[0]
    assert "evaluate" in jobs and "predict_area" not in jobs and "train_model" not in jobs


@pytest.mark.slow
def test_changed_evaluation_code_reruns_only_the_evaluation(workdir, repo_root, run_snakemake):
    # Snakemake reruns a job for an input whose content changed, not for a newer mtime
    # alone, so the library module is edited (a comment) and restored byte for byte.
    code = repo_root / "src" / "landcover" / "evaluation" / "scoring.py"
    text, before = code.read_bytes(), code.stat()
    try:
        code.write_bytes(text + b"\n# edited by test_workflow\n")
        run = run_snakemake(workdir, "per_class_iou", "-n")
    finally:
        code.write_bytes(text)
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = run.stdout.split("Job stats:")[1].split("total")[0]
    assert "evaluate" in jobs and "Updated input files" in run.stdout
    assert not any(rule in jobs for rule in ("train_model", "predict_area", "align_area"))
    assert "Nothing to be done" in run_snakemake(workdir, "per_class_iou", "-n").stdout


@pytest.mark.slow
def test_report_holds_figures_and_the_per_class_table(workdir, run_snakemake):
    run = run_snakemake(workdir, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    assert "per_class_iou.csv" in html and "per_class_iou.png" in html
    assert "area_lakeside.png" in html and "learning_curves.png" in html
    # the first page (the workflow description) shows the leaderboard and the caveat
    first = first_page(html)
    assert "agreement with the reference labels" in first and "77 %" in first
    assert "best mIoU on top" in first and "IoU per class" in first
    board = pd.read_csv(workdir / "results/experiments.csv")
    assert {"model_kind", "iou_water"} <= set(board.columns)
    best, second = (f'<tt class="docutils literal">{e}</tt>' for e in board["experiment"][:2])
    assert best in first and first.index(best) < first.index(second)
    assert "No leaderboard" not in first
    # a report without the leaderboard (another target) says so instead of failing
    run = run_snakemake(workdir, "--report", "data.html", "data")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "No leaderboard in this report yet" in first_page((workdir / "data.html").read_text())


def first_page(html: str) -> str:
    """The workflow description of a Snakemake report (its first page), as HTML."""
    line = next(x for x in html.splitlines() if x.strip().startswith("var workflow_desc ="))
    return json.loads(line.split("=", 1)[1].strip().rstrip(";"))


@pytest.mark.slow
def test_missing_class_code_fails_and_leaves_no_output(workdir, tmp_path, run_snakemake):
    # on a copy: the failed job deletes the area's aligned files, which later tests of
    # the shared run (the ensemble's) would then rebuild and retrain from
    workdir = shutil.copytree(workdir, tmp_path / "run", symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["classes"] = [c for c in config["classes"] if c["name"] != "water"]
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(workdir, "results/aligned/lakeside/labels.tif", config="bad.yaml")
    assert run.returncode != 0
    log = (workdir / "logs/align_area/lakeside.log").read_text()
    assert "lakeside" in log and "[80]" in log and "ignore_codes" in log
    assert not (workdir / "results/aligned/lakeside/labels.tif").exists()
    assert not (workdir / "results/aligned/lakeside/image.tif").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("confidence", "probabilities"), [(True, False), (False, True)])
def test_optional_rasters_follow_the_config(
    tmp_path, repo_root, run_snakemake, confidence, probabilities
):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["predict"] = {"confidence": confidence, "probabilities": probabilities}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "results/maps/unet/cpu/lakeside.tif", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    job = run.stdout.split("rule predict_area:")[1].split("jobid")[0]
    assert "results/maps/unet/cpu/lakeside.tif" in job
    assert ("lakeside_confidence.tif" in job) is confidence
    assert ("lakeside_probabilities.tif" in job) is probabilities


@pytest.mark.slow
def test_onnx_engine_maps_with_the_exported_network(tmp_path, repo_root, run_snakemake, job_counts):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["predict"] = {"engine": "onnx"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "maps", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    # one export per network (unet), none for the per-pixel model or the ensemble
    assert job_counts(run.stdout)["export_model"] == 1
    jobs = [job.split("\n\n")[0] for job in run.stdout.split("rule predict_area:")[1:]]
    experiments = set()
    for job in jobs:
        experiment = job.split("output: ")[1].split("/")[2]  # results/maps/{experiment}/...
        experiments.add(experiment)
        given = "results/models/unet/cpu/model.onnx" in job.split("output:")[0]
        assert given is (experiment == "unet"), job
    assert experiments == {"unet", "pixel", "ensemble"}


@pytest.mark.slow
def test_minimum_mapping_unit_scores_raw_and_cleaned_maps(
    tmp_path, repo_root, run_snakemake, job_counts
):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["predict"] = {"min_mapping_unit": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "per_class_iou", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    runs = len(config["experiments"])  # unet, pixel, ensemble
    held_out = len(config["holdout"]) * runs
    assert counts["sieve_map"] == held_out and counts["evaluate_mmu"] == runs
    assert counts["evaluate"] == runs  # the raw maps are scored too
    assert "results/eval/unet/cpu/mmu/per_class_iou.csv" in run.stdout
    assert "results/maps/unet/cpu/lakeside_mmu.tif" in run.stdout


@pytest.mark.slow
def test_bad_config_fails_before_any_job(tmp_path, repo_root, run_snakemake):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["holdout"] = ["atlantis"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n")
    assert run.returncode != 0
    assert "holdout: area 'atlantis' is not defined" in run.stdout + run.stderr
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_gpu_profile_plans_cuda_jobs_with_a_gpu(run_snakemake):
    run = run_snakemake(None, "--profile", "gpu", "-n", "models", cores=None, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "results/models/unet/cuda/best.pt" in run.stdout
    resources = {
        experiment: run.stdout.split(f"experiment={experiment}, device=cuda")[1].split("\n")[2]
        for experiment in ("unet", "pixel")
    }  # the job's wildcards line, then threads, then resources
    assert "gpu=1" in resources["unet"]
    assert "gpu=0" in resources["pixel"]  # the per-pixel model runs on the CPU: no GPU


@pytest.mark.slow
def test_lint_is_clean(run_snakemake):
    run = run_snakemake(None, "--lint", cores=1, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "Congratulations" in run.stdout + run.stderr
        or "no lints" in (run.stdout + run.stderr).lower()
    )


def test_snakefmt_is_clean(repo_root):
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    run = subprocess.run(
        [snakefmt, "--check", "Snakefile", "rules"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


ENSEMBLE = {"model": {"kind": "ensemble", "members": ["unet", "pixel"]}}
"""The ensemble of the default experiments (the U-Net and the per-pixel baseline)."""


@pytest.fixture(scope="module")
def ensemble_workdir(workdir, tmp_path_factory, run_snakemake) -> tuple[Path, str]:
    """A copy of the tiny run with an ensemble of its two experiments added, run again."""
    copy = tmp_path_factory.mktemp("ensemble") / "run"
    shutil.copytree(workdir, copy, symlinks=True)  # keeps mtimes: nothing else reruns
    config = yaml.safe_load((copy / "config.yaml").read_text())
    # the run's experiments (the schema's default when the config names none) and the ensemble
    named = config.get("experiments") or {"unet": {}, "pixel": {"model": {"kind": "pixel"}}}
    config["experiments"] = {**named, "ensemble": ENSEMBLE}
    (copy / "ensemble.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(copy, config="ensemble.yaml")
    assert run.returncode == 0, run.stderr[-4000:]
    return copy, run.stdout + run.stderr


@pytest.mark.slow
def test_an_ensemble_is_trained_mapped_and_scored_like_the_others(ensemble_workdir, tiny_config):
    run, log = ensemble_workdir
    trained = log.split("rule train_model:")[1:]
    assert len(trained) == 1 and "experiment=ensemble" in trained[0]  # members are not retrained
    meta = json.loads((run / "results/models/ensemble/cpu/hardware.json").read_text())
    assert meta["members"] == ["unet", "pixel"]
    for area in tiny_config()["areas"]:
        path = run / f"results/maps/ensemble/cpu/{area}.tif"
        assert cog_validate(str(path))[0]
        with (
            rasterio.open(path) as map_,
            rasterio.open(run / f"results/maps/unet/cpu/{area}.tif") as unet,
        ):
            assert map_.profile == unet.profile and map_.colormap(1) == unet.colormap(1)
            assert map_.tags()["experiment"] == "ensemble" and map_.tags()["device"] == "cpu"
    metrics = json.loads((run / "results/eval/ensemble/cpu/metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 1
    board = pd.read_csv(run / "results/experiments.csv")
    assert set(board["experiment"]) == {"unet", "pixel", "ensemble"}
    assert (run / "results/figures/ensemble/cpu/learning_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_an_ensemble_holds_a_gpu_when_a_member_does(tmp_path, tiny_config, run_snakemake):
    experiments = {
        "unet": {},
        "pixel": {"model": {"kind": "pixel"}},
        "trees": {"model": {"kind": "pixel", "trees": 50}},
        "ensemble": ENSEMBLE,
        "forest": {"model": {"kind": "ensemble", "members": ["pixel", "trees"]}},
    }
    config = tiny_config(experiments=experiments, devices=["cuda"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(tmp_path, "-n", "models")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = {
        job.split("experiment=")[1].split(",")[0]: job
        for job in run.stdout.split("rule train_model:")[1:]
    }
    assert (
        "results/models/unet/cuda/best.pt, results/models/pixel/cuda/best.pt"
        in (jobs["ensemble"].split("output:")[0])
    )  # the members' models are inputs: trained first, on the same device
    assert "gpu=1" in jobs["ensemble"] and "gpu=0" in jobs["forest"]
