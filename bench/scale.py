"""Scale: how the cost of each stage grows with the area, up to a 100 km x 100 km scene.

For each scene side (2500, 5000 and 10000 px by default: 25, 50 and 100 km at 10 m) the
script writes an aligned image and labels laid out as ``align_area`` writes them
(float32 reflectance with NaN nodata and band descriptions, uint8 class indices with 255
ignored; 256 px tiles, ZSTD), then runs the chain's stages on them, each in a fresh
process, through the same library calls as the rules' scripts:

- ``tile``: :func:`landcover.prepare.tiling.tile_area` (rule ``tile_area``);
- ``split``: :func:`landcover.prepare.split.split_patches` (no area held out: blocks);
- ``weights``: :func:`landcover.prepare.weights.class_weights`;
- ``train``: one epoch of :func:`landcover.models.train` on a fixed number of train and
  validation patches drawn from the split (``--train-patches``, ``--val-patches``), so
  its cost should not move with the area;
- ``map``: :func:`landcover.mapping.scene.predict_area` over the whole scene (map and,
  as the config says, its confidence raster);
- ``evaluate``: :func:`landcover.evaluation.scoring.evaluate` over the whole scene (as a
  held-out area is scored).

Per stage it records the wall seconds of the call (imports excluded), the CPU seconds
of its process over the call (other load on a shared machine moves them less than the
wall time) and the 1-minute load average when it started, the peak resident memory of
its process (``VmHWM``, imports included; it counts the resident pages of memory-mapped
files too, such as the patch store's), the peak of its anonymous memory (``RssAnon``,
sampled: what the process holds itself) and the floor before the call (``VmHWM`` after
the imports), the bytes the stage added on disk (allocated blocks of its outputs)
and the bytes its process wrote (``write_bytes`` of ``/proc/self/io``: temporary files
count too). ``--repeat N`` runs each stage N times and keeps the fastest run. Then it
prints one table row per size and stage (and a ``total`` per size), and the slope of a
least-squares fit of log(quantity) against log(pixels) per stage: 1 is linear growth,
0 flat. Goals (issue 16): time and disk linear or better (slope <= 1), memory flat
(slope near 0).

Settings come from the config (``--configfile``, the demo's by default): patch size and
stride, split, class weights, model, training (one epoch) and ``predict``; its areas are
replaced by one area, ``scene``. The default measures the config's network
(unet/resnet18, 10 bands, 64 px patches, 256 px windows with the confidence raster):
the figures of the workflow as configured, where mapping takes most of the run (the
last run's length on 2 cores is in docs/benchmarks.md, section Scale).
``--encoder tu-mobilenetv3_small_050`` (a 2 M-parameter encoder) maps several times
faster; ``--bands 3`` shrinks every file and the patch store.

The scene: parcels of random classes (all the config's classes), ignored 3 px lines
between blocks of parcels and a nodata square in the upper left; each band holds its
class's reflectance plus noise on the DN grid at the band's native resolution (20 m
bands repeat each value over 2 x 2 px), so it compresses about as real aligned imagery
does. Only one size's files exist at a time (``--keep`` keeps them all); the largest
size needs the room of its patch store (the ``tile`` row's disk) and its scene.

Usage (from the repository root; torch threads and GDAL threads = ``--threads``):
    python bench/scale.py
    python bench/scale.py --repeat 2 --csv scale.csv
    python bench/scale.py --sizes 2500 5000 --encoder tu-mobilenetv3_small_050
    python bench/scale.py --sizes 384 512 --bands 3 --work scratch --keep

With the demo config's split (192 px blocks, a 16 px buffer) a 256 px scene leaves no
train patch; 384 px is enough.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AREA = "scene"
"""The one area of the bench's config."""

STAGES = ("tile", "split", "weights", "train", "map", "evaluate")

MODULES = {
    "tile": ["landcover.prepare.tiling"],
    "split": ["landcover.prepare.split"],
    "weights": ["landcover.prepare.weights"],
    "train": ["landcover.models.segmentation", "segmentation_models_pytorch"],
    "map": [
        "landcover.mapping.scene",
        "landcover.models.segmentation",
        "segmentation_models_pytorch",
    ],
    "evaluate": ["landcover.evaluation.scoring"],
}
"""What each stage imports before its timer starts (its floor of memory)."""

QUANTITIES = {
    "seconds": "seconds",
    "cpu_s": "cpu seconds",
    "peak_mib": "peak RSS",
    "anon_mib": "peak anon",
    "disk_mb": "disk",
    "written_mb": "written",
}
"""Measured columns and their names in the slope table."""


# --------------------------------------------------------------------------- files


def paths(folder: Path) -> dict[str, Path]:
    """Every file of one size's run, under ``folder``."""
    return {
        "settings": folder / "settings.json",
        "image": folder / "aligned/image.tif",
        "labels": folder / "aligned/labels.tif",
        "patches": folder / "patches",
        "area_index": folder / f"patches/{AREA}/index.parquet",
        "index": folder / "patches/index.parquet",
        "train_index": folder / "patches/train_index.parquet",
        "weights": folder / "patches/class_weights.json",
        "models": folder / "models",
        "map": folder / f"maps/{AREA}.tif",
        "confidence": folder / f"maps/{AREA}_confidence.tif",
        "probabilities": folder / f"maps/{AREA}_probabilities.tif",
        "eval": folder / "eval",
    }


def store_arrays(folder: Path) -> tuple[Path, Path]:
    """The area's patch store as rule ``tile_area`` declares it (images, labels)."""
    patches = paths(folder)["patches"] / AREA
    return patches / "images.npy", patches / "labels.npy"


def area_stores(folder: Path) -> dict[str, Any]:
    """The patch stores of the bench's one area, as rule ``train_model`` passes them."""
    from landcover.prepare.store import stores

    images, labels = store_arrays(folder)
    return stores([AREA], [images], [labels])


def allocated(folder: Path) -> int:
    """Bytes allocated on disk by the files under ``folder`` (the bench's logs aside)."""
    files = (p for p in folder.rglob("*") if p.is_file() and p.suffix != ".log")
    return sum(p.lstat().st_blocks * 512 for p in files)


# --------------------------------------------------------------------------- the scene


def class_signatures(n_classes: int, bands: int, seed: int) -> np.ndarray:
    """Mean DN of each class in each band, ``(n_classes, bands)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(1300, 6000, (n_classes, bands))


def label_strip(top: int, rows: int, width: int, table: np.ndarray, nodata: int) -> np.ndarray:
    """Class indices of rows ``top`` .. ``top + rows``.

    Parcels of random classes, ignored lines between blocks of parcels and an ignored
    ``nodata`` x ``nodata`` px square in the upper left.
    """
    r = np.arange(top, top + rows)[:, None]
    c = np.arange(width)[None, :]
    labels = table[(r // 48) % table.shape[0], (c // 64) % table.shape[1]].astype(np.uint8)
    labels[((r % 250) < 3) | ((c % 250) < 3)] = 255  # lines between blocks, as roads
    labels[(r < nodata) & (c < nodata)] = 255
    return labels


def image_strip(
    labels: np.ndarray,
    signatures: np.ndarray,
    factors: Sequence[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Reflectance of a strip: class DN plus noise at each band's native pixel size.

    ``factors``: native pixel size over 10 m per band (2 for 20 m bands). Ignored pixels
    keep a reflectance (roads do in real imagery); the caller blanks the nodata square.
    """
    rows, width = labels.shape
    classes = np.where(labels == 255, 0, labels)
    out = np.empty((len(factors), rows, width), np.float32)
    for b, f in enumerate(factors):
        coarse = rng.integers(-250, 250, (-(-rows // f), -(-width // f)))
        noise = np.repeat(np.repeat(coarse, f, axis=0), f, axis=1)[:rows, :width]
        out[b] = (signatures[classes, b] + noise) * 1e-4 - 0.1
    return out


def write_scene(
    folder: Path, side: int, bands: Sequence[str], classes: Sequence[str], threads: int
) -> float:
    """Write the aligned image and labels of a ``side`` x ``side`` px scene; return seconds."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from landcover.grid import Grid
    from landcover.prepare.align import image_profile, labels_profile
    from landcover.sources.sentinel2 import BAND_RESOLUTION

    start = time.perf_counter()
    p = paths(folder)
    p["image"].parent.mkdir(parents=True, exist_ok=True)
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 5000000), side, side)
    rng = np.random.default_rng(0)
    table = rng.integers(0, len(classes), (101, 103))
    signatures = class_signatures(len(classes), len(bands), 1)
    factors = [max(1, BAND_RESOLUTION.get(b, 10) // 10) for b in bands]
    # BIGTIFF: a 10 000^2 px image is over 4 GB before compression
    image_profile_ = {**image_profile(grid, len(bands)), "BIGTIFF": "YES"}
    nodata = side // 8
    rows = 768  # whole 256 px tiles, and a multiple of 2 and 6 (20 m and 60 m bands)
    with (
        rasterio.Env(GDAL_NUM_THREADS=str(threads)),
        rasterio.open(p["image"], "w", **image_profile_) as img,
        rasterio.open(p["labels"], "w", **labels_profile(grid)) as lab,
    ):
        for b, name in enumerate(bands, start=1):
            img.set_band_description(b, name)
        lab.set_band_description(1, "class")
        lab.update_tags(classes=json.dumps(list(classes)))
        for top in range(0, side, rows):
            n = min(rows, side - top)
            labels = label_strip(top, n, side, table, nodata)
            image = image_strip(labels, signatures, factors, rng)
            image[:, : max(0, nodata - top), :nodata] = np.nan
            window = Window(0, top, side, n)
            img.write(image, window=window)
            lab.write(labels, 1, window=window)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- settings


def bench_config(
    configfile: str | Path, bands: int, arch: str | None = None, encoder: str | None = None
) -> dict[str, Any]:
    """The validated config of a bench scene: ``configfile``'s, one area, one epoch.

    ``bands``: the first N of its ``imagery.bands``; ``arch``, ``encoder``: the model's,
    when given.
    """
    import yaml

    from landcover.config import validated

    config = yaml.safe_load(Path(configfile).read_text()) or {}
    config["areas"] = {AREA: {"bbox": [3.0, 45.0, 3.1, 45.1]}}
    config["holdout"] = []
    names = list((config.get("imagery") or {}).get("bands") or [])
    if not 1 <= bands <= len(names):
        raise SystemExit(f"--bands: 1 to {len(names)} (the config's imagery.bands), got {bands}")
    config.setdefault("imagery", {})["bands"] = names[:bands]
    model = config.setdefault("model", {})
    model.update({k: v for k, v in (("arch", arch), ("encoder", encoder)) if v})
    config.setdefault("training", {})["epochs"] = 1
    return validated(config)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The bench's config, with what the stages' processes need of the command line.

    Under ``scale``: the schema's ``bench`` section is the device bench's.
    """
    config = bench_config(args.configfile, args.bands, args.arch, args.encoder)
    config["scale"] = {
        "threads": args.threads,
        "train_patches": args.train_patches,
        "val_patches": args.val_patches,
    }
    return config


def class_names(config: dict[str, Any]) -> list[str]:
    """The config's class names, in index order."""
    return [str(c["name"]) for c in config["classes"]]


def subset_index(p: dict[str, Path], n_train: int, n_val: int, seed: int) -> dict[str, int]:
    """Keep ``n_train`` train and ``n_val`` val patches of the split (drawn at random).

    The other patches become ``buffer`` (left out by training), so that the training
    stage sees the same number of patches whatever the area. Returns the counts kept.
    """
    import geopandas as gpd

    index = gpd.read_parquet(p["index"])
    rng = np.random.default_rng(seed)
    split = index["split"].to_numpy().copy()
    kept = {}
    for name, n in (("train", n_train), ("val", n_val)):
        rows = np.flatnonzero(split == name)
        keep = rng.choice(rows, size=min(n, len(rows)), replace=False)
        split[np.setdiff1d(rows, keep)] = "buffer"
        kept[name] = len(keep)
    index["split"] = split
    index.to_parquet(p["train_index"])
    return kept


# --------------------------------------------------------------------------- stages (child)


def stage_tile(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``tile_area``."""
    from landcover.prepare.tiling import tile_area

    images, labels = store_arrays(folder)
    images.parent.mkdir(parents=True, exist_ok=True)
    patches = config["patches"]
    tile_area(
        area=AREA,
        image=p["image"],
        labels=p["labels"],
        out_images=images,
        out_labels=labels,
        out_index=p["area_index"],
        size=patches["size"],
        stride=patches["stride"],
        min_valid=patches["min_valid"],
        class_names=class_names(config),
        dtype=patches["dtype"],
    )


def stage_split(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``split_patches``."""
    from landcover.prepare.split import split_patches

    split = config["split"]
    split_patches(
        indexes=[p["area_index"]],
        out=p["index"],
        holdout=config["holdout"],
        method=split["method"],
        block_size=split["block_size"],
        buffer=split["buffer"],
        val_fraction=split["val_fraction"],
        seed=config["seed"],
    )


def stage_weights(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``class_weights``."""
    from landcover.prepare.weights import class_weights

    weights = config["class_weights"]
    class_weights(
        index=p["index"],
        out=p["weights"],
        class_names=class_names(config),
        method=weights["method"],
        beta=weights["beta"],
        max_weight=weights["max_weight"],
    )


def stage_train(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``train_model`` (one epoch, on the subset index)."""
    from landcover.models import Outputs, train

    models = p["models"]
    train(
        config["model"]["kind"],
        stores=area_stores(folder),
        index=p["train_index"],
        class_weights=p["weights"],
        outputs=Outputs(
            models / "best.pt", models / "last.pt", models / "history.csv", models / "hardware.json"
        ),
        bands=config["imagery"]["bands"],
        classes=config["classes"],
        model=config["model"],
        training=config["training"],
        device="cpu",
        threads=config["scale"]["threads"],
        seed=config["seed"],
        processes=1,
        members=[],
    )


def stage_map(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``predict_area`` (with the outputs the config's ``predict`` asks for)."""
    from landcover.mapping.scene import predict_area

    predict = config["predict"]
    p["map"].parent.mkdir(parents=True, exist_ok=True)
    predict_area(
        model=p["models"] / "best.pt",
        image=p["image"],
        out=p["map"],
        confidence=p["confidence"] if predict["confidence"] else None,
        probabilities=p["probabilities"] if predict["probabilities"] else None,
        kind=config["model"]["kind"],
        classes=config["classes"],
        ignore_codes=config["ignore_codes"],
        experiment="scale",
        device="cpu",
        settings=predict,
        threads=config["scale"]["threads"],
    )


def stage_evaluate(p: dict[str, Path], config: dict[str, Any], folder: Path) -> None:
    """Rule ``evaluate``, the whole scene scored (as a held-out area is)."""
    from landcover.evaluation.scoring import evaluate

    p["eval"].mkdir(parents=True, exist_ok=True)
    evaluate(
        maps=[p["map"]],
        labels=[p["labels"]],
        index=p["index"],
        out_per_class=p["eval"] / "per_class_iou.csv",
        out_metrics=p["eval"] / "metrics.json",
        out_confusion=p["eval"] / "confusion.csv",
        classes=config["classes"],
        ignore_codes=config["ignore_codes"],
        areas=[AREA],
        holdout=[AREA],
        kl_patch=config["evaluate"]["kl_patch"],
        kl_eps=config["evaluate"]["kl_eps"],
        experiment="scale",
        device="cpu",
    )


CALLS: dict[str, Callable[[dict[str, Path], dict[str, Any], Path], None]] = {
    "tile": stage_tile,
    "split": stage_split,
    "weights": stage_weights,
    "train": stage_train,
    "map": stage_map,
    "evaluate": stage_evaluate,
}


def proc_field(path: str, name: str) -> int:
    """An integer field of a ``/proc/self`` file (``VmHWM`` in kB, ``write_bytes``)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in {path} (Linux only)")


def bytes_written() -> float:
    """Bytes this process sent to storage so far; NaN where the kernel does not say.

    ``/proc/self/io`` needs the kernel's task I/O accounting, which some containers lack.
    """
    try:
        return float(proc_field("/proc/self/io", "write_bytes"))
    except (OSError, RuntimeError):
        return math.nan


def child(stage: str, folder: Path) -> None:
    """Run one stage in this process; print its times, memory and bytes written as JSON."""
    p = paths(folder)
    config = json.loads(p["settings"].read_text())
    for module in MODULES[stage]:
        importlib.import_module(module)
    floor = proc_field("/proc/self/status", "VmHWM") * 1024
    written = bytes_written()
    cpu = cpu_seconds()
    with AnonPeak() as anon:
        start = time.perf_counter()
        CALLS[stage](p, config, folder)
        seconds = time.perf_counter() - start
    figures = {
        "seconds": seconds,
        "cpu": cpu_seconds() - cpu,
        "floor": floor,
        "peak": proc_field("/proc/self/status", "VmHWM") * 1024,
        "anon": anon.peak,
        "written": bytes_written() - written,
    }
    print(json.dumps(figures))


class AnonPeak:
    """The largest ``RssAnon`` of this process while the block runs, sampled by a thread.

    ``VmHWM`` also counts the pages of memory-mapped files (the patch store) that are
    resident: page cache, which the kernel reclaims under pressure. ``RssAnon`` is the
    memory the process itself holds; the kernel keeps no peak of it, hence the sampling
    (every 20 ms: a short spike between samples can be missed).
    """

    def __init__(self, interval: float = 0.02) -> None:
        """Sample every ``interval`` seconds."""
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, proc_field("/proc/self/status", "RssAnon") * 1024)
            if self._done.wait(self.interval):
                return

    def __enter__(self) -> AnonPeak:
        """Start sampling."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling (after one last sample)."""
        self._done.set()
        self._thread.join()


def cpu_seconds() -> float:
    """CPU seconds (user and system, all threads) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- stages (parent)


def run_stage(stage: str, folder: Path, threads: int) -> dict[str, float]:
    """Run ``stage`` in a fresh process; return its figures.

    The peak memory is the child's ``VmHWM``, read by the child itself: the
    ``ru_maxrss`` of a child started by ``vfork`` (as ``subprocess`` does) starts from
    this process's peak.
    """
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    log = folder / f"{stage}.log"
    before = allocated(folder)
    load = os.getloadavg()[0]
    with log.open("w") as err, tempfile.TemporaryFile("w+") as out:
        command = [sys.executable, __file__, "--child", stage, str(folder)]
        proc = subprocess.run(command, stdout=out, stderr=err, env=env, check=False)
        out.seek(0)
        lines = out.read().strip().splitlines()
    if proc.returncode or not lines:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n{tail}")
    figures = json.loads(lines[-1])
    return {
        "seconds": figures["seconds"],
        "cpu_s": figures["cpu"],
        "load": load,
        "peak_mib": figures["peak"] / 2**20,
        "anon_mib": figures["anon"] / 2**20,
        "floor_mib": figures["floor"] / 2**20,
        "disk_mb": (allocated(folder) - before) / 1e6,
        "written_mb": figures["written"] / 1e6,
    }


def measure_stage(stage: str, folder: Path, threads: int, repeat: int) -> dict[str, float]:
    """Run ``stage`` ``repeat`` times; keep the fastest run's times and the largest peak.

    Other load on a shared machine only slows a run down. Disk figures are the first
    run's: later runs overwrite its outputs.
    """
    runs = [run_stage(stage, folder, threads) for _ in range(repeat)]
    fastest = min(runs, key=lambda r: r["seconds"])
    return runs[0] | {
        "seconds": fastest["seconds"],
        "cpu_s": fastest["cpu_s"],
        "load": fastest["load"],
        "peak_mib": max(r["peak_mib"] for r in runs),
        "anon_mib": max(r["anon_mib"] for r in runs),
    }


def measure_size(
    side: int, work: Path, config: dict[str, Any], keep: bool, repeat: int = 1
) -> list[dict[str, Any]]:
    """Write a ``side`` px scene, run every stage on it; return one row per stage."""
    folder = work / f"side{side}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    p = paths(folder)
    p["settings"].write_text(json.dumps(config))
    opts = config["scale"]
    bands = config["imagery"]["bands"]
    written = write_scene(folder, side, bands, class_names(config), opts["threads"])
    scene_mb = (allocated(folder)) / 1e6
    print(
        f"{side} x {side} px: scene written in {written:.1f} s, {scene_mb:.0f} MB on disk "
        f"(raw float32 {side * side * len(bands) * 4 / 1e6:.0f} MB)",
        flush=True,
    )
    rows = []
    for stage in STAGES:
        if stage == "train":
            kept = subset_index(p, opts["train_patches"], opts["val_patches"], config["seed"])
        figures = measure_stage(stage, folder, opts["threads"], repeat)
        rows.append({"side": side, "pixels": side * side, "stage": stage, **figures})
        note = f" ({kept['train']} train, {kept['val']} val patches)" if stage == "train" else ""
        print(
            f"  {stage:<9} {figures['seconds']:8.1f} s (cpu {figures['cpu_s']:.1f} s, load "
            f"{figures['load']:.1f})  peak {figures['peak_mib']:7.0f} MiB (anon "
            f"{figures['anon_mib']:.0f})  "
            f"disk {figures['disk_mb']:9.1f} MB{note}",
            flush=True,
        )
    if not keep:
        shutil.rmtree(folder)
    return rows


# --------------------------------------------------------------------------- report


def slope(pixels: Sequence[float], values: Sequence[float]) -> float:
    """Slope of the least-squares line of log(values) on log(pixels); NaN if undefined."""
    x, y = np.asarray(pixels, float), np.asarray(values, float)
    if len(set(x)) < 2 or (y <= 0).any() or not np.isfinite(y).all():
        return math.nan
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def with_total(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``total`` stage per size: seconds and bytes summed, peak the largest."""
    total = table.groupby(["side", "pixels"], as_index=False).agg(
        seconds=("seconds", "sum"),
        cpu_s=("cpu_s", "sum"),
        load=("load", "max"),
        peak_mib=("peak_mib", "max"),
        anon_mib=("anon_mib", "max"),
        floor_mib=("floor_mib", "max"),
        disk_mb=("disk_mb", "sum"),
        written_mb=("written_mb", "sum"),
    )
    return pd.concat([table, total.assign(stage="total")], ignore_index=True)


def slopes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per stage: the log-log slope of each quantity against the pixel count."""
    rows = []
    for stage, group in table.groupby("stage", sort=False):
        rows.append(
            {"stage": stage}
            | {name: slope(group["pixels"], group[col]) for col, name in QUANTITIES.items()}
        )
    return pd.DataFrame(rows)


def print_report(table: pd.DataFrame, config: dict[str, Any]) -> None:
    """Print the measurements and the growth slopes."""
    shown = table.copy()
    shown["size"] = shown["side"].map(lambda s: f"{s} x {s}")
    columns = ["size", "stage", "seconds", "cpu_s", "load"]
    columns += ["peak_mib", "anon_mib", "floor_mib", "disk_mb", "written_mb"]
    formats = {c: (lambda v: f"{v:.1f}") for c in columns[2:]}
    formats |= {"seconds": lambda v: f"{v:.2f}", "cpu_s": lambda v: f"{v:.2f}"}
    print("\n" + shown[columns].to_string(index=False, formatters=formats))
    print(
        "\ngrowth with the pixel count (slope of log-log fit; 1 = linear, 0 = flat; goals: "
        "time and disk <= 1, memory ~ 0):"
    )
    print(slopes(table).to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="n/a"))
    tiles, patches = table[table["stage"] == "tile"], config["patches"]
    bands = len(config["imagery"]["bands"])
    ratio = tiles["disk_mb"] * 1e6 / (tiles["pixels"] * bands * 4)
    print(
        "tile output over the scene's raw float32 pixels: "
        + ", ".join(f"{r:.2f}" for r in ratio)
        + f" (patches {patches['size']} px every {patches['stride']} px, store "
        + f"{patches.get('dtype', 'float32')})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[2500, 5000, 10000], help="scene sides (px)"
    )
    parser.add_argument("--bands", type=int, default=10, help="first N of imagery.bands")
    parser.add_argument("--configfile", default="config/config.yaml")
    parser.add_argument("--arch", help="default: the config's model.arch")
    parser.add_argument("--encoder", help="default: the config's model.encoder")
    parser.add_argument("--train-patches", type=int, default=512, help="train patches of the epoch")
    parser.add_argument("--val-patches", type=int, default=128, help="its validation patches")
    parser.add_argument("--threads", type=int, default=2, help="torch and GDAL threads")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each stage; the fastest counts"
    )
    parser.add_argument("--work", help="scratch folder (default: a new one in the system tmp)")
    parser.add_argument("--keep", action="store_true", help="keep every size's files")
    parser.add_argument("--csv", help="also write the table (with the total rows) here")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "FOLDER"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    """Measure every stage at every size; print the table and the growth slopes."""
    args = parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    from landcover.hardware import cpu_model

    config = settings(args)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = config["model"]
    print(
        f"cpu: {cpu_model()}, threads {args.threads}; model {model['arch']}/{model['encoder']}, "
        f"{args.bands} bands, {len(config['classes'])} classes, patches "
        f"{config['patches']['size']} px every {config['patches']['stride']} px, windows "
        f"{config['predict']['window']} px; work folder {work}",
        flush=True,
    )
    rows = []
    for side in sorted(args.sizes):
        rows += measure_size(side, work, config, args.keep, args.repeat)
    table = with_total(pd.DataFrame(rows))
    print_report(table, config)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if not args.work and not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
