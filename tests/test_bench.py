"""Device benchmarks and run-time tables: engines, measurement, summaries, figures, rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from PIL import Image
from snakemake_interface_common.exceptions import WorkflowError

from landcover.config import validated
from landcover.errors import ConfigError, DataError
from landcover.models.segmentation import bench
from landcover.report import bench as benchreport

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DEFAULTS = validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})
TINY_MODEL = DEFAULTS["model"] | {"encoder": "tu-mobilenetv3_small_050"}


# ----------------------------------------------------------------------------- engines


@pytest.mark.parametrize(
    ("cores", "ladder"),
    [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])],
)
def test_thread_ladder_doubles_up_to_the_cores(cores, ladder):
    assert bench.thread_ladder(cores) == ladder


def test_thread_ladder_needs_a_thread():
    with pytest.raises(ValueError, match=">= 1"):
        bench.thread_ladder(0)


def test_parse_engine():
    assert bench.parse_engine("cpu4") == bench.Engine("cpu", 4)
    assert bench.parse_engine("cuda1").name == "cuda1"


@pytest.mark.parametrize("name", ["cpu0", "gpu0", "cuda", "cpu-1", "mps"])
def test_parse_engine_rejects_bad_names(name):
    with pytest.raises(ConfigError, match=r"cpu<N>.*cuda<K>"):
        bench.parse_engine(name)


@pytest.mark.parametrize(
    ("visible", "count"),
    [(None, 2), ("0", 1), ("1,0", 2), ("0,1,2,3", 2), ("", 0), ("-1", 0), ("1,-1,0", 1)],
)
def test_cuda_device_count_follows_cuda_visible_devices(tmp_path, visible, count):
    for gpu in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / gpu).mkdir()
    assert bench.cuda_device_count(visible, tmp_path) == count


def test_cuda_device_count_without_a_driver(tmp_path):
    assert bench.cuda_device_count(None, tmp_path / "absent") == 0


def test_bench_engines_cpu_ladder_then_gpus():
    assert bench.bench_engines(4, 2) == ["cpu1", "cpu2", "cpu4", "cuda0", "cuda1"]
    assert bench.bench_engines(8, 0, ["cpu8", "cuda0"]) == ["cpu8", "cuda0"]


def test_bench_engines_rejects_a_repeated_engine():
    with pytest.raises(ConfigError, match="each once"):
        bench.bench_engines(2, 0, ["cpu1", "cpu1"])


def test_bench_defaults_come_from_the_schema():
    assert DEFAULTS["bench"] == {"warmup": 2, "steps": 5, "batch_size": None, "engines": None}


@pytest.mark.parametrize("bench_section", [{"step": 3}, {"steps": 0}])
def test_bad_bench_settings_are_schema_errors(bench_section):
    with pytest.raises(WorkflowError, match="bench"):
        validated({"areas": DEFAULTS["areas"], "bench": bench_section})


def test_unknown_engine_is_a_config_error():
    with pytest.raises(ConfigError, match=r"bench\.engines: unknown engine 'gpu0'"):
        bench.check_bench(DEFAULTS["bench"] | {"engines": ["gpu0"]})


# ------------------------------------------------------------------------- measurement


def test_throughput_keeps_median_min_and_max():
    result = bench.throughput([0.5, 0.25, 1.0], batch_size=8)
    assert result == {
        "patches_per_s": 16.0,
        "patches_per_s_min": 8.0,
        "patches_per_s_max": 32.0,
        "step_seconds": 0.5,
    }


def test_throughput_needs_timed_steps():
    with pytest.raises(ValueError, match="positive"):
        bench.throughput([], 8)


def test_time_steps_warms_up_then_times_each_step():
    calls, syncs = [], []
    seconds = bench.time_steps(lambda: calls.append(1), 2, 3, lambda: syncs.append(1))
    assert len(calls) == 5 and len(seconds) == 3
    assert len(syncs) == 4  # once after the warm-up, once after each timed step
    assert all(s >= 0 for s in seconds)


def test_bench_engine_measures_training_and_inference_on_one_thread():
    table = bench.bench_engine(
        engine="cpu1",
        model=TINY_MODEL,
        training=DEFAULTS["training"] | {"batch_size": 2},
        bands=3,
        classes=4,
        patch_size=32,
        batch_size=None,
        warmup=0,
        steps=2,
        threads=1,
        seed=0,
    )
    assert table["mode"].tolist() == ["train", "infer"]
    assert (table["engine"] == "cpu1").all() and (table["threads"] == 1).all()
    assert (table["device"] == "cpu").all() and (table["precision"] == "fp32").all()
    assert table["device_index"].isna().all()
    assert (table["patches_per_s_min"] <= table["patches_per_s"]).all()
    assert (table["patches_per_s"] <= table["patches_per_s_max"]).all()
    assert (table["batch_size"] == 2).all() and (table["patch_size"] == 32).all()
    assert set(bench.HARDWARE_COLUMNS) <= set(table.columns)
    assert table["cpu_model"].iloc[0]


def test_asking_for_a_missing_gpu_is_an_error():
    with pytest.raises(ConfigError, match=r"cuda99.*CUDA device"):
        bench.bench_engine(
            engine="cuda99",
            model=TINY_MODEL,
            training=DEFAULTS["training"],
            bands=3,
            classes=4,
            patch_size=32,
            batch_size=None,
            warmup=0,
            steps=1,
            threads=1,
            seed=0,
        )


# --------------------------------------------------------------------------- summaries


def engine_rows(engine: str, device: str, threads: int, train: float, infer: float) -> list:
    common = {
        "engine": engine,
        "device": device,
        "device_index": int(engine[4:]) if device == "cuda" else None,
        "threads": threads,
        "batch_size": 8,
        "patch_size": 64,
        "bands": 10,
        "arch": "unet",
        "encoder": "resnet18",
        "precision": "bf16" if device == "cuda" else "fp32",
        "cpu_model": "Test CPU",
        "gpu_name": "Test GPU" if device == "cuda" else None,
    }
    return [
        {
            **common,
            "mode": mode,
            "patches_per_s": v,
            "patches_per_s_min": v * 0.9,
            "patches_per_s_max": v * 1.1,
        }
        for mode, v in (("train", train), ("infer", infer))
    ]


@pytest.fixture
def engine_tables(tmp_path) -> list[Path]:
    paths = []
    for rows in (
        engine_rows("cuda1", "cuda", 2, 2100.0, 8100.0),
        engine_rows("cuda0", "cuda", 2, 2000.0, 8000.0),
        engine_rows("cpu4", "cpu", 4, 30.0, 100.0),
        engine_rows("cpu1", "cpu", 1, 10.0, 40.0),
        engine_rows("cpu2", "cpu", 2, 18.0, 70.0),
    ):
        path = tmp_path / f"{rows[0]['engine']}.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        paths.append(path)
    return paths


def test_summarise_engines_orders_rows_and_adds_scaling(engine_tables, tmp_path):
    devices = benchreport.summarise_engines(engine_tables, tmp_path / "devices.csv")
    assert devices["engine"].tolist() == [
        e for e in ("cpu1", "cpu2", "cpu4", "cuda0", "cuda1") for _ in range(2)
    ]
    assert devices["mode"].tolist()[:2] == ["train", "infer"]
    written = pd.read_csv(tmp_path / "devices.csv")
    cpu4 = written[(written["engine"] == "cpu4") & (written["mode"] == "train")].iloc[0]
    assert cpu4["speedup"] == pytest.approx(3.0)
    assert cpu4["parallel_efficiency"] == pytest.approx(0.75)
    gpu = written[(written["engine"] == "cuda0") & (written["mode"] == "infer")].iloc[0]
    assert gpu["speedup"] == pytest.approx(200.0) and pd.isna(gpu["parallel_efficiency"])


def test_summarise_engines_names_a_broken_table(tmp_path):
    bad = tmp_path / "cpu1.csv"
    bad.write_text("engine,threads\ncpu1,1\n")
    with pytest.raises(DataError, match=r"cpu1\.csv.*patches_per_s"):
        benchreport.summarise_engines([bad], tmp_path / "devices.csv")


def test_figures_of_the_device_table(engine_tables, tmp_path):
    devices = tmp_path / "devices.csv"
    benchreport.summarise_engines(engine_tables, devices)
    benchreport.plot_device_ladder(devices, tmp_path / "ladder.png", size=(8, 4), dpi=50)
    benchreport.plot_cpu_scaling(devices, tmp_path / "scaling.png", size=(9, 4), dpi=50)
    assert Image.open(tmp_path / "ladder.png").size == (400, 200)
    assert Image.open(tmp_path / "scaling.png").size == (450, 200)


def test_scaling_figure_needs_a_cpu_engine(engine_tables, tmp_path):
    devices = tmp_path / "devices.csv"
    benchreport.summarise_engines(engine_tables[:2], devices)  # GPUs only
    with pytest.raises(DataError, match="no CPU engine"):
        benchreport.plot_cpu_scaling(devices, tmp_path / "scaling.png")


# ------------------------------------------------------------------------- run times

TSV_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_tsv(path: Path, *rows: tuple[float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:01\t{rss}\t500\t{rss / 2}\t80\t0.1\t0.2\t50\t{s / 2}\n" for s, rss in rows]
    path.write_text(TSV_HEADER + "".join(lines))


def test_benchmark_job_follows_the_path_convention(tmp_path):
    assert benchreport.benchmark_job(tmp_path / "split_patches.tsv", tmp_path) == (
        "split_patches",
        "",
    )
    path = tmp_path / "predict_area/baseline/cpu/delta.tsv"
    assert benchreport.benchmark_job(path, tmp_path) == ("predict_area", "baseline/cpu/delta")


def test_collect_runtimes_gathers_every_benchmark(tmp_path):
    root = tmp_path / "benchmarks"
    write_tsv(root / "align_area/delta.tsv", (2.0, 300.0))
    write_tsv(root / "train_model/baseline/cpu.tsv", (10.0, 900.0), (14.0, 1000.0))
    write_tsv(root / "class_weights.tsv", (0.5, 120.0))
    table = benchreport.collect_runtimes(root, tmp_path / "runtimes.csv")
    assert table["rule"].tolist() == ["train_model", "align_area", "class_weights"]
    written = pd.read_csv(tmp_path / "runtimes.csv", keep_default_na=False)
    assert list(written.columns) == list(benchreport.RUNTIME_COLUMNS)
    train = written.iloc[0]
    assert train["wildcards"] == "baseline/cpu" and train["repeats"] == 2
    assert train["seconds"] == pytest.approx(12.0)  # repeats averaged
    assert train["max_rss_mb"] == pytest.approx(1000.0)  # peak memory: the largest
    assert written.iloc[2]["wildcards"] == ""


def test_collect_runtimes_reads_extended_benchmarks(tmp_path):
    root = tmp_path / "benchmarks"
    path = root / "odd/place.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("s\tmax_rss\trule_name\tjobid\n1.5\t42\ttile_area\t3\n")
    table = benchreport.collect_runtimes(root, tmp_path / "runtimes.csv")
    assert table["rule"].tolist() == ["tile_area"] and table["max_rss_mb"].tolist() == [42.0]


def test_collect_runtimes_errors(tmp_path):
    with pytest.raises(DataError, match="No benchmark file"):
        benchreport.collect_runtimes(tmp_path, tmp_path / "runtimes.csv")
    bad = tmp_path / "broken.tsv"
    bad.write_text("not\ta benchmark\n")
    with pytest.raises(DataError, match=r"broken\.tsv.*not a Snakemake benchmark"):
        benchreport.collect_runtimes(tmp_path, tmp_path / "runtimes.csv")
    assert not (tmp_path / "runtimes.csv").exists()


def test_runtime_figure(tmp_path):
    root = tmp_path / "benchmarks"
    for i in range(5):
        write_tsv(root / f"tile_area/area{i}.tsv", (1.0 + i, 100.0 + i))
    benchreport.collect_runtimes(root, tmp_path / "runtimes.csv")
    benchreport.plot_runtimes(tmp_path / "runtimes.csv", tmp_path / "runtimes.png", top=3, dpi=50)
    assert (tmp_path / "runtimes.png").stat().st_size > 0


# ------------------------------------------------------------------------------- rules


def job_counts(stdout: str) -> dict[str, int]:
    """Jobs per rule from the "Job stats" table of a dry run."""
    block = stdout.split("Job stats:")[1].split("total")[0]
    rows = (line.split() for line in block.splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the same plan on any machine
    return subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(ROOT / "config" / "config.yaml"),
            "-n",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_bench_plans_one_job_per_engine_holding_every_core(tmp_path):
    cores = min(2, os.cpu_count() or 1)
    run = dry_run(tmp_path, "--cores", str(cores), "bench")
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


def test_runtime_table_comes_after_the_default_run(tmp_path):
    run = dry_run(tmp_path, "--cores", "1", "results/runtime/runtimes.png")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = job_counts(run.stdout)
    assert jobs["collect_runtimes"] == 1 and jobs["plot_runtimes"] == 1
    assert "evaluate" in jobs and "plot_area" in jobs


@pytest.mark.slow
def test_bench_target_writes_the_table_and_both_figures(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(
        {
            "model": TINY_MODEL,
            "patches": {"size": 32, "stride": 32, "min_valid": 0.5},
            "training": {"batch_size": 2},
        }
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "1",
            "bench",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    devices = pd.read_csv(tmp_path / "results/bench/devices.csv")
    assert devices["engine"].tolist() == ["cpu1", "cpu1"]
    assert devices["encoder"].iloc[0] == TINY_MODEL["encoder"]
    assert (devices["patches_per_s"] > 0).all() and devices["cpu_model"].notna().all()
    for figure in ("device_ladder.png", "cpu_scaling.png"):
        assert (tmp_path / "results/bench" / figure).stat().st_size > 0
    assert not (tmp_path / "resources").exists()  # no data was made
