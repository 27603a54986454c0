"""Device benchmarks (segmentation.bench): engines, settings, and measuring one engine."""

from __future__ import annotations

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from landcover.config import validated
from landcover.errors import ConfigError
from landcover.models.segmentation import bench

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
