"""Process set-up (landcover.runtime): malloc tuning for CPU tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Forward passes of a small convolutional net (a 32 MiB activation each): served by
# fresh mmaps, every pass faults on the activations' pages again; reused, hardly at all
# (the heap may still grow once in a while, as the allocation order varies).
PROBE = """
import json, resource, sys
import torch
from landcover.runtime import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tuned" else None
torch.set_num_threads(1)
net = torch.nn.Sequential(
    torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 4, 3, padding=1)
)
x = torch.randn(4, 4, 256, 256)
with torch.inference_mode():
    for _ in range(4):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(6):
        net(x)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6
print(json.dumps({"tuned": tuned, "faults": faults}))
"""


def probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "LANDCOVER_"))}
    run = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env=clean | env,
    )
    return json.loads(run.stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_tuned_malloc_reuses_freed_buffers():
    default, tuned = probe("default"), probe("tuned")
    assert tuned["tuned"] is True
    assert default["faults"] > 8192  # at least the 32 MiB activation's pages, every pass
    assert tuned["faults"] < 0.25 * default["faults"]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_users_malloc_settings_win():
    assert probe("tuned", MALLOC_TRIM_THRESHOLD_="131072")["tuned"] is False
    off = probe("tuned", LANDCOVER_TUNE_MALLOC="0")
    assert off["tuned"] is False and off["faults"] > 8192  # glibc's defaults: faults again


def test_a_failing_script_prints_its_traceback_once(tmp_path):
    # the log file holds the traceback (Snakemake prints it for a failed job); the
    # console gets the error in one line
    log = tmp_path / "logs" / "job.log"
    script = (
        "from landcover.runtime import configure_logging\n"
        "from landcover.errors import DataError\n"
        f"configure_logging({str(log)!r})\n"
        "raise DataError('Area x: the labels are empty. Fix: check labels.root.')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "DataError: Area x: the labels are empty" in run.stderr and str(log) in run.stderr
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 1 and "DataError" in text
