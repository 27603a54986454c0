"""Benchmark tables and figures (landcover.report.bench): device summaries, run times."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from landcover.errors import DataError
from landcover.report import bench as benchreport

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
    path = tmp_path / "predict_area/unet/cpu/delta.tsv"
    assert benchreport.benchmark_job(path, tmp_path) == ("predict_area", "unet/cpu/delta")


def test_collect_runtimes_gathers_every_benchmark(tmp_path):
    root = tmp_path / "benchmarks"
    write_tsv(root / "align_area/delta.tsv", (2.0, 300.0))
    write_tsv(root / "train_model/unet/cpu.tsv", (10.0, 900.0), (14.0, 1000.0))
    write_tsv(root / "class_weights.tsv", (0.5, 120.0))
    table = benchreport.collect_runtimes(root, tmp_path / "runtimes.csv")
    assert table["rule"].tolist() == ["train_model", "align_area", "class_weights"]
    written = pd.read_csv(tmp_path / "runtimes.csv", keep_default_na=False)
    assert list(written.columns) == list(benchreport.RUNTIME_COLUMNS)
    train = written.iloc[0]
    assert train["wildcards"] == "unet/cpu" and train["repeats"] == 2
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


def test_collect_runtimes_needs_a_benchmark(tmp_path):
    with pytest.raises(DataError, match="No benchmark file"):
        benchreport.collect_runtimes(tmp_path, tmp_path / "runtimes.csv")
    assert not (tmp_path / "runtimes.csv").exists()


def test_collect_runtimes_names_a_broken_benchmark(tmp_path):
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
