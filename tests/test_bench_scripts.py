"""The bench scripts of issue 16, run as a user runs them (from the repository root).

``bench/gpu_check.sh`` on a machine without CUDA, ``bench/scale.py`` on tiny scenes and
``bench/peers.py`` without its optional peers (and with them, where installed). They
assert on what the scripts print and write, never on timings.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_ENCODER = "tu-mobilenetv3_small_050"  # 2 M parameters, built without downloading
STAGES = ["tile", "split", "weights", "train", "map", "evaluate"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command from the repository root; return the finished process."""
    return subprocess.run(
        list(args),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gpu_check_without_cuda_says_so_and_does_nothing(tmp_path):
    out = tmp_path / "gpu_check"
    # no GPU visible to torch, whatever the machine has
    env = {"CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    result = run("bash", "bench/gpu_check.sh", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gpu_check needs CUDA: "), result.stdout
    assert result.stdout.count("\n") == 1  # the one line, and nothing run after it
    assert not out.exists()


def slope_table(stdout: str) -> pd.DataFrame:
    """The growth table that bench/scale.py prints last: stage -> slope per quantity."""
    lines = stdout.split("growth with the pixel count")[1].splitlines()[1:]
    header = ["stage", "seconds", "cpu seconds", "peak RSS", "peak anon", "disk", "written"]
    words = [line.split() for line in lines]
    rows = [w for w in words if len(w) == len(header) and w[0] in [*STAGES, "total"]]
    table = pd.DataFrame(rows, columns=header).set_index("stage")
    return table.apply(pd.to_numeric, errors="coerce")  # n/a: NaN


def test_scale_measures_every_stage_and_prints_its_growth(tmp_path):
    csv = tmp_path / "scale.csv"
    result = run(
        sys.executable,
        "bench/scale.py",
        *("--sizes", "384", "512", "--bands", "3", "--encoder", TINY_ENCODER),
        *("--train-patches", "32", "--val-patches", "8"),
        *("--work", str(tmp_path / "work"), "--csv", str(csv)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(csv)
    for side in (384, 512):
        rows = table[table["side"] == side]
        assert list(rows["stage"]) == [*STAGES, "total"]
        assert (rows["pixels"] == side * side).all()
    measured = table[table["stage"] != "total"]
    assert (measured[["seconds", "cpu_s", "floor_mib"]] > 0).all().all()
    assert (measured["peak_mib"] >= measured["floor_mib"]).all()
    assert (measured["anon_mib"] > 0).all() and (measured["anon_mib"] <= measured["peak_mib"]).all()
    by_stage = measured.set_index(["stage", "side"])["disk_mb"]
    assert by_stage["tile"].gt(0).all() and by_stage["map"].gt(0).all()
    # the patch store grows with the area
    assert by_stage["tile", 512] > by_stage["tile", 384]
    slopes = slope_table(result.stdout)
    assert list(slopes.index) == [*STAGES, "total"]
    for quantity in ("seconds", "cpu seconds", "peak RSS", "peak anon"):
        assert slopes[quantity].map(math.isfinite).all(), slopes
    assert math.isfinite(slopes.loc["tile", "disk"]) and math.isfinite(slopes.loc["map", "disk"])
    assert not list((tmp_path / "work").iterdir())  # each size's files removed (no --keep)


HIDE_PEERS = """
import importlib.util, runpy, sys
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: (
    None if name in ("torchgeo", "terratorch") else find_spec(name, *a)
)
sys.argv = ["bench/peers.py"]
runpy.run_path("bench/peers.py", run_name="__main__")
"""
"""bench/peers.py as on a machine without its peers, whether or not they are installed."""


def test_peers_without_the_peers_names_them_and_exits_0():
    result = run(sys.executable, "-c", HIDE_PEERS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torchgeo is not installed" in result.stdout
    assert "terratorch is not installed" in result.stdout
    assert 'pip install -e ".[bench]"' in result.stdout
    assert "samples/s" not in result.stdout  # nothing measured


@pytest.mark.skipif(
    not all(importlib.util.find_spec(p) for p in ("torchgeo", "terratorch")),
    reason='the peers are optional (pip install -e ".[bench]")',
)
def test_peers_prints_the_three_comparisons(tmp_path):
    result = run(
        sys.executable,
        "bench/peers.py",
        *("--side", "512", "--map-side", "512", "--bands", "3", "--encoder", TINY_ENCODER),
        *("--rounds", "1", "--batches", "2", "--load-batches", "2", "--map-rounds", "1"),
        *("--work", str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for section in ("(a) training data path", "(b) training steps", "(c) mapping"):
        assert section in out
    assert out.count("landcover / torchgeo:") == 2
    assert "landcover / terratorch: speed" in out and "peak memory" in out
    assert not list(tmp_path.iterdir())  # its scratch folder removed
