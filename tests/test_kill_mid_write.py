"""Fault injection: a writer killed with SIGKILL part-way leaves no output that looks complete.

Each writer runs in a subprocess and stops part-way (after its first band or row, inside
``landcover.io.atomic_path``); the test kills it with SIGKILL, which no ``finally``
survives. Only the hidden temporary (``.<stem>.<random><suffix>``) is left; the next
write of the same file uses a temporary of its own, ignores the leftover and completes.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landcover.grid import area_grid
from landcover.io import atomic_path
from landcover.prepare.store import NpyWriter
from landcover.sources.windows import write_imagery

GRID = area_grid((-16.50, 15.00, -16.49, 15.01), 10)
BANDS = ["B02", "B03"]
ROWS = (4, 8, 8)

WRITERS = {
    # the raw imagery writer of every source kind: a GeoTIFF written band by band
    "imagery.tif": """
from landcover.grid import area_grid
from landcover.sources.windows import write_imagery

grid = area_grid((-16.50, 15.00, -16.49, 15.01), 10)

def layers():
    yield np.full(grid.shape, 0.2, np.float32)
    pause()  # band 1 is written; the writer waits for band 2
    yield np.full(grid.shape, 0.3, np.float32)

write_imagery("site", grid, ["B02", "B03"], layers(), {}, out)
""",
    # the patch store of tile_area: an .npy array written row by row
    "images.npy": """
from landcover.io import atomic_path
from landcover.prepare.store import NpyWriter

with atomic_path(out) as tmp, tmp.open("wb") as file:
    writer = NpyWriter(file, np.float32, (4, 8, 8))
    writer.append(np.ones((8, 8)))
    file.flush()
    pause()  # one row of four is on disk
""",
}

PRELUDE = """
import sys, time
from pathlib import Path
import numpy as np

out, ready = Path(sys.argv[1]), Path(sys.argv[2])

def pause():
    ready.touch()
    time.sleep(600)
"""


def write_whole(out: Path) -> None:
    """Write ``out`` to the end, as the rerun of the killed job does."""
    if out.suffix == ".tif":
        layers = (np.full(GRID.shape, v, np.float32) for v in (0.2, 0.3))
        write_imagery("site", GRID, BANDS, layers, {}, out)
        return
    with atomic_path(out) as tmp, tmp.open("wb") as file:
        writer = NpyWriter(file, np.float32, ROWS)
        for _ in range(ROWS[0]):
            writer.append(np.ones(ROWS[1:]))
        writer.finish()


def read_whole(out: Path) -> None:
    """Read ``out`` back: every band or row as written by :func:`write_whole`."""
    if out.suffix == ".tif":
        with rasterio.open(out) as src:
            assert list(src.descriptions) == BANDS and src.read().shape[0] == 2
        return
    assert np.load(out).shape == ROWS


def kill_part_way(out: Path, ready: Path) -> None:
    """Run the writer of ``out`` in a subprocess; SIGKILL it once it has paused mid-write."""
    script = PRELUDE + WRITERS[out.name]
    process = subprocess.Popen([sys.executable, "-c", script, str(out), str(ready)])
    try:
        wait_for(lambda: ready.exists() or process.poll() is not None)
        assert process.poll() is None, f"the writer exited with {process.returncode}"
        assert temporaries(out), "no temporary file while writing"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the writer never reached its pause"
        time.sleep(0.05)


def temporaries(out: Path) -> list[Path]:
    """The hidden temporaries of ``out`` (atomic_path's names: ``.<stem>.<random><suffix>``)."""
    pattern = re.compile(rf"\.{re.escape(out.stem)}\.\w+{re.escape(out.suffix)}")
    return [path for path in out.parent.iterdir() if pattern.fullmatch(path.name)]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_writer_killed_mid_write_leaves_no_output(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out" / name
    kill_part_way(out, tmp_path / "ready")
    assert not out.exists()
    leftovers = temporaries(out)
    assert len(leftovers) == 1 and sorted(out.parent.iterdir()) == leftovers
    assert leftovers[0].name.startswith(".")  # hidden: no output that looks complete
    write_whole(out)  # the rerun
    read_whole(out)
    assert sorted(out.parent.iterdir()) == sorted([out, *leftovers])  # the leftover ignored
