"""Fault injection: a disk that fills during each writer, and writers that lie.

Every output goes through ``landcover.io.atomic_path``; a full disk must end in a
``DiskFullError`` that names the file and the mount, and leave nothing behind (neither
the output nor its temporary). Where the machine allows it (root, `mount`), the disk is a
real tmpfs of 256 KiB mounted by the test; elsewhere those tests are skipped, and the
monkeypatched variants below (a writer that fails part-way with ENOSPC, a file cut off
after its writer returned, as GDAL leaves it) still run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.errors
import torch
from affine import Affine
from rasterio.io import MemoryFile

from landcover import io
from landcover.errors import DiskFullError, WriteError
from landcover.hardware import write_hardware_json
from landcover.io import atomic_path, gtiff_profile, to_cog
from landcover.models.segmentation.data import EpochSampler
from landcover.models.segmentation.nets import save_checkpoint
from landcover.models.segmentation.resume import initial_state, load_state, save_state
from landcover.prepare.store import NpyWriter
from landcover.prepare.tiling import tile_area

DISK_SIZE = 256 * 1024
PAGE = 4096  # tmpfs counts whole pages
TRANSFORM = Affine(10, 0, 400_000, 0, -10, 1_800_000)
CRS = "EPSG:32628"
PAD = "padding"


# --------------------------------------------------------------------------- a small disk


def _mount_tmpfs(folder: Path) -> str | None:
    """Mount a tmpfs of DISK_SIZE at ``folder``; None, or why it cannot be done here."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    why = (run.stderr.strip().splitlines() or ["no message"])[0]
    return f"mount -t tmpfs is not permitted here: {why}" if run.returncode else None


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted at teardown."""
    folder = tmp_path / "disk"
    folder.mkdir()
    why = _mount_tmpfs(folder)
    if why is not None:
        pytest.skip(why)
    try:
        yield folder
    finally:
        # lazily if a failed test left a file open there
        if subprocess.run(["umount", str(folder)], check=False).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Leave about ``leave`` bytes free on ``disk`` (whole pages)."""
    free = shutil.disk_usage(disk).free
    (disk / PAD).write_bytes(b"\0" * max(0, free - leave))


def left_on(folder: Path) -> list[str]:
    """Everything under ``folder`` but the padding: outputs and temporaries."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != PAD)


def assert_disk_full(err: pytest.ExceptionInfo[DiskFullError], path: Path) -> None:
    message = str(err.value)
    assert message.startswith("Disk full while writing"), message
    assert f"'{path}'" in message and str(path.parent) in message, message
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)


def noise(shape: tuple[int, ...], dtype: str = "uint8") -> np.ndarray:
    """Values that do not compress, so that a file is as large as its pixels."""
    return np.random.default_rng(0).integers(0, 255, shape).astype(dtype)


# --------------------------------------------------------------------------- writers


def write_gtiff(path: Path, tag_bytes: int = 0) -> None:
    """64 x 64 px uncompressed, plus a tag that GDAL writes with the directory, on close."""
    data = noise((1, 64, 64))
    profile = gtiff_profile(CRS, TRANSFORM, data.shape, 1, "uint8", None, codec="none")
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        if tag_bytes:
            dst.update_tags(note="x" * tag_bytes)


def write_cog(path: Path) -> None:
    data = noise((1, 384, 384))
    profile = gtiff_profile(CRS, TRANSFORM, data.shape, 1, "uint8", 0, codec="none")
    with MemoryFile() as memory, memory.open(**profile) as source:
        source.write(data)
        with atomic_path(path) as tmp:
            to_cog(source, tmp, resampling="mode")


def write_npy(path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        writer = NpyWriter(file, np.float32, (10, 4, 32, 32))
        for row in noise((10, 4, 32, 32), "float32"):
            writer.append(row)
        writer.finish()


def write_parquet(path: Path) -> None:
    frame = pd.DataFrame({"patch": np.arange(10_000), "x": noise((10_000,), "float64")})
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp)


def write_json(path: Path) -> None:
    write_hardware_json(path, {"device": "cpu", "notes": ["x" * 64] * 1000})


def write_csv(path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(noise((1500, 10), "float64")).to_csv(tmp, index=False)


def write_checkpoint(path: Path) -> None:
    save_checkpoint(path, {"state_dict": {"w": torch.randn(30_000)}, "meta": {}})


WRITERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "gtiff": (write_gtiff, "image.tif"),
    "cog": (write_cog, "map.tif"),
    "npy": (write_npy, "images.npy"),
    "parquet": (write_parquet, "index.parquet"),
    "json": (write_json, "hardware.json"),
    "csv": (write_csv, "history.csv"),
    "checkpoint": (write_checkpoint, "last.pt"),
}


# --------------------------------------------------------------------------- on a full disk


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.parametrize("leave", [0, 16 * 1024])
def test_full_disk_is_named_and_leaves_nothing(disk, kind, leave):
    write, name = WRITERS[kind]
    fill(disk, leave)
    path = disk / "out" / name
    with pytest.raises(DiskFullError) as err:
        write(path)
    assert_disk_full(err, path)
    assert left_on(disk) in ([], ["out"])


@pytest.mark.parametrize("kind", WRITERS)
def test_the_same_writers_succeed_with_room(disk, kind):
    write, name = WRITERS[kind]
    write(disk / name)
    assert left_on(disk) == [name]


def test_gdal_errors_it_only_logged_are_caught(disk):
    """The defect: with room for the pixels but not for the directory, GDAL logged
    "TIFFWriteDirectoryTagData:IO error writing tag data" and returned normally.

    Each amount of free space must give either a whole file or a named error; at least
    one must be such a silent failure, caught by the check that reads the file back.
    """
    silent = 0
    for pages in range(15, 20):
        fill(disk, pages * PAGE)
        path = disk / "image.tif"
        try:
            write_gtiff(path, tag_bytes=6000)
        except DiskFullError as err:
            assert_disk_full(pytest.ExceptionInfo.from_exception(err), path)
            assert left_on(disk) == []
            silent += isinstance(err.__cause__, io._Incomplete)
        else:
            with rasterio.open(path) as src:
                assert src.read().shape == (1, 64, 64) and len(src.tags()["note"]) == 6000
            path.unlink()
    assert silent, "no free space in the sweep made GDAL fail silently: widen the sweep"


def test_patch_store_on_full_disk(disk, tmp_path):
    """tile_area writes three files at once: the error names them, none is left."""
    image, labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    for path, data, nodata in ((image, noise((3, 64, 64), "float32"), None),
                               (labels, noise((1, 64, 64)) % 3, 255)):  # fmt: skip
        profile = gtiff_profile(CRS, TRANSFORM, data.shape, len(data), data.dtype, nodata)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(classes=json.dumps(["a", "b", "c"]))
    fill(disk, 8 * 1024)
    out = disk / "patches"
    with pytest.raises(DiskFullError) as err:
        tile_area(
            area="a1",
            image=image,
            labels=labels,
            out_images=out / "images.npy",
            out_labels=out / "labels.npy",
            out_index=out / "index.parquet",
            size=16,
            stride=16,
            min_valid=0.5,
            class_names=["a", "b", "c"],
            dtype="float32",
        )
    assert_disk_full(err, out / "images.npy")
    assert left_on(disk) == ["patches"]


# --------------------------------------------------------------------------- without a mount


@pytest.mark.parametrize("kind", WRITERS)
def test_writer_that_fails_part_way_with_enospc(tmp_path, monkeypatch, kind):
    """ENOSPC part-way through a file, reported when it is flushed and closed (as a
    buffered writer, or NFS, reports it): named a full disk even where free space reads
    plenty (another job may have freed some since)."""
    write, name = WRITERS[kind]

    def fail_part_way(tmp: Path) -> None:
        cut_off(tmp)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io, "_check_complete", fail_part_way)
    monkeypatch.setattr(io, "_free_space", lambda folder: (10**12, Path("/mnt")))
    path = tmp_path / "out" / name
    with pytest.raises(DiskFullError) as err:
        write(path)
    assert f"'{path}'" in str(err.value) and "931.3 GiB left on /mnt" in str(err.value)
    assert left_on(tmp_path) == ["out"]


def cut_off(path: Path) -> None:
    """Drop the last quarter of a file, as a full disk does to a writer that does not
    report it."""
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size * 3 // 4)


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.parametrize("free", [0, 10**12])
def test_file_cut_off_after_its_writer_returned(tmp_path, monkeypatch, kind, free):
    """A writer that returns normally with its file cut off (GDAL's directory on close):
    a full disk says so; otherwise the error says the file came out incomplete."""
    write, name = WRITERS[kind]
    check = io._check_complete

    def cut_then_check(tmp: Path) -> None:
        cut_off(tmp)
        check(tmp)

    monkeypatch.setattr(io, "_check_complete", cut_then_check)
    monkeypatch.setattr(io, "_free_space", lambda folder: (free, Path("/mnt")))
    path = tmp_path / name
    with pytest.raises(WriteError) as err:
        write(path)
    assert isinstance(err.value, DiskFullError) == (free == 0)
    assert f"'{path}'" in str(err.value)
    if free:
        assert "came out incomplete although the writer reported no error" in str(err.value)
    assert left_on(tmp_path) == []


def test_torch_write_failure_on_a_full_disk(tmp_path, monkeypatch):
    """torch reports a failed write as a RuntimeError without errno."""

    def failing_save(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"PK\x03\x04")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(io, "_free_space", lambda folder: (4096, Path("/mnt")))
    with pytest.raises(DiskFullError, match=r"4\.0 KiB left on /mnt"):
        save_checkpoint(tmp_path / "last.pt", {"state_dict": {}, "meta": {}})
    assert left_on(tmp_path) == []

    # with room left, the same failure is not blamed on the disk
    monkeypatch.setattr(io, "_free_space", lambda folder: (10**12, Path("/mnt")))
    with pytest.raises(RuntimeError, match="PytorchStreamWriter") as err:
        save_checkpoint(tmp_path / "last.pt", {"state_dict": {}, "meta": {}})
    assert not isinstance(err.value, DiskFullError)
    assert left_on(tmp_path) == []


def test_other_causes_are_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_free_space", lambda folder: (0, Path("/mnt")))
    with pytest.raises(PermissionError) as err, atomic_path(tmp_path / "a.csv"):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert not isinstance(err.value, DiskFullError)
    with pytest.raises(ValueError, match="bad value"), atomic_path(tmp_path / "a.csv"):
        raise ValueError("bad value")
    assert left_on(tmp_path) == []


def test_nested_writes_name_every_file(tmp_path):
    image, labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    with pytest.raises(DiskFullError) as err, atomic_path(image), atomic_path(labels):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert f"'{image}' and '{labels}'" in str(err.value)
    assert left_on(tmp_path) == []


def test_a_full_temporary_folder_is_named(tmp_path, monkeypatch):
    """Map jobs write scratch rasters to TMPDIR; when only that is full, the fix says so."""
    scratch = Path(tempfile.gettempdir())

    def free_space(folder: Path) -> tuple[int, Path]:
        return (0, scratch) if folder == scratch else (10**12, Path("/data"))

    monkeypatch.setattr(io, "_free_space", free_space)
    with pytest.raises(DiskFullError) as err, atomic_path(tmp_path / "map.tif"):
        raise rasterio.errors.RasterioIOError("Write failed.")
    assert f"0 B left on {scratch}" in str(err.value) and "set TMPDIR" in str(err.value)


def test_whole_files_pass_the_checks(tmp_path):
    for write, name in WRITERS.values():
        write(tmp_path / name)
    assert left_on(tmp_path) == sorted(name for _, name in WRITERS.values())


# --------------------------------------------------------------------------- resume state


def resume_parts() -> tuple:
    """A tiny model with its optimiser, scaler and sampler, one step taken."""
    torch.manual_seed(0)
    core = torch.nn.Linear(16, 16)
    optimizer = torch.optim.Adam(core.parameters())
    core(torch.ones(2, 16)).sum().backward()
    optimizer.step()
    return core, optimizer, None, torch.amp.GradScaler("cpu", enabled=False), EpochSampler(4, 0)


def save_epoch(resume_dir: Path, epoch: int) -> None:
    state = initial_state() | {"epoch": epoch, "best_epoch": epoch, "best_miou": 0.5}
    save_state(resume_dir, "id", {}, *resume_parts(), state, improved=True)


def test_resume_state_on_full_disk_keeps_the_previous_one(disk, caplog):
    resume_dir = disk / "resume"
    save_epoch(resume_dir, 1)
    fill(disk, 0)
    with pytest.raises(DiskFullError) as err:
        save_epoch(resume_dir, 2)
    # the best checkpoint of epoch 2 is written first
    assert_disk_full(err, resume_dir / "best-0002.pt")
    assert left_on(disk) == ["resume", "resume/best-0001.pt", "resume/last.pt"]

    state = initial_state()
    assert load_state(resume_dir, "id", *resume_parts(), state)
    assert state["epoch"] == 1
