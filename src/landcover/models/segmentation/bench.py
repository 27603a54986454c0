"""Device benchmarks: training and inference throughput of the model per engine.

The benchmarks measure the training and inference throughput (patches per second) of
the configured model on synthetic patches of the configured shape, so they need no
data. An *engine* is where the steps run: ``cpu<N>`` is the CPU with N torch threads,
``cuda<K>`` is CUDA device K (among those visible) with the configured precision. Each
engine is one Snakemake job (``rules/bench.smk``) writing one table;
``landcover.report.bench`` joins them into ``results/bench/devices.csv`` and draws the
figures.

torch is imported inside the functions that use it: the workflow imports this module
while it plans a run (to list the engines), and planning a run should not pay for
loading torch.
"""

from __future__ import annotations

import logging
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from landcover.errors import ConfigError
from landcover.io import atomic_path

if TYPE_CHECKING:
    import torch

    from landcover.models.segmentation.trainer import TrainingSettings

log = logging.getLogger(__name__)

MODES = ("train", "infer")
"""What is measured on each engine: a training step, an inference step."""

HARDWARE_COLUMNS = (
    "device_name",
    "cpu_model",
    "cpu_count",
    "gpu_name",
    "gpu_memory_gb",
    "cuda_visible_devices",
    "torch",
    "cuda",
    "cudnn",
    "python",
    "platform",
)
"""Columns of ``devices.csv`` taken from :func:`landcover.hardware.describe_hardware`."""

_ENGINE = re.compile(r"^(?P<kind>cpu|cuda)(?P<index>[0-9]+)$")


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class Engine:
    """Where benchmark steps run.

    Attributes:
        kind: ``cpu`` or ``cuda``.
        index: torch threads for ``cpu``, the CUDA device index for ``cuda``.

    """

    kind: Literal["cpu", "cuda"]
    index: int

    @property
    def name(self) -> str:
        """The engine's name (``cpu4``, ``cuda0``): the ``{engine}`` wildcard."""
        return f"{self.kind}{self.index}"


def parse_engine(name: str) -> Engine:
    """Parse an engine name (``cpu1``, ``cpu8``, ``cuda0``).

    Raises:
        ConfigError: naming the accepted forms.

    """
    match = _ENGINE.match(str(name))
    if match is None or (match["kind"] == "cpu" and int(match["index"]) < 1):
        raise ConfigError(
            f"bench.engines: unknown engine '{name}'; use cpu<N> (N >= 1 torch threads, "
            "e.g. cpu1, cpu8) or cuda<K> (CUDA device K, e.g. cuda0)."
        )
    return Engine(match["kind"], int(match["index"]))  # type: ignore[arg-type]


def thread_ladder(max_threads: int) -> list[int]:
    """Thread counts of the CPU strong-scaling ladder: 1, 2, 4, ... and ``max_threads``.

    >>> thread_ladder(6)
    [1, 2, 4, 6]
    """
    if max_threads < 1:
        raise ValueError(f"max_threads must be >= 1, got {max_threads}")
    ladder = [1 << k for k in range(max_threads.bit_length()) if 1 << k <= max_threads]
    return ladder if ladder[-1] == max_threads else [*ladder, max_threads]


def cuda_device_count(
    visible: str | None = None, proc_gpus: str | Path = "/proc/driver/nvidia/gpus"
) -> int:
    """Count the CUDA devices this process may use, without importing torch.

    The NVIDIA driver lists one folder per GPU under ``/proc/driver/nvidia/gpus``;
    ``CUDA_VISIBLE_DEVICES`` (``visible``) narrows them: an empty value or ``-1``
    hides every GPU, a list shows its entries up to the first invalid one.

    Args:
        visible: the value of ``CUDA_VISIBLE_DEVICES`` (``None``: unset).
        proc_gpus: the driver's GPU folder.

    """
    folder = Path(proc_gpus)
    present = len(list(folder.iterdir())) if folder.is_dir() else 0
    if visible is None:
        return present
    entries = []
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry
        entries.append(entry)
    return min(len(entries), present)


def bench_threads(cores: int | None, cpus: int | None = None) -> int:
    """Threads of a benchmark job: the run's cores, at most the machine's CPUs.

    A job holding every core of the run runs alone (Snakemake starts nothing beside
    it), so no other job disturbs a measurement; the CPU ladder climbs to this count.

    Args:
        cores: ``--cores`` of the run (``None``: not given, as in a dry run).
        cpus: CPUs of the machine (default ``os.cpu_count()``).

    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cores or cpus, cpus))


def engine_gpus(engines: Sequence[str]) -> dict[str, int]:
    """GPUs each engine's job holds: 1 for ``cuda<K>``, 0 for ``cpu<N>``."""
    return {name: int(parse_engine(name).kind == "cuda") for name in engines}


def bench_engines(
    max_threads: int, cuda_devices: int, engines: Sequence[str] | None = None
) -> list[str]:
    """Engines of the ``bench`` target.

    Args:
        max_threads: the largest thread count of the CPU ladder.
        cuda_devices: CUDA devices available.
        engines: an explicit list (config ``bench.engines``) replacing the default.

    Returns:
        ``cpu1, cpu2, cpu4, ..., cpu<max_threads>, cuda0, ..., cuda<cuda_devices - 1>``,
        or the explicit list (checked).

    Raises:
        ConfigError: an explicit engine is malformed or listed twice.

    """
    if engines is not None:
        names = [parse_engine(name).name for name in engines]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(
                f"bench.engines: {list(engines)} must list at least one engine, each once."
            )
        return names
    return [f"cpu{n}" for n in thread_ladder(max_threads)] + [
        f"cuda{k}" for k in range(cuda_devices)
    ]


def check_bench(bench: Mapping[str, Any]) -> None:
    """The check of the validated ``bench`` section that the schema cannot make (engine names).

    Raises:
        ConfigError: an engine name that is not ``cpu<N>`` or ``cuda<K>``.

    """
    if bench["engines"] is not None:
        bench_engines(1, 0, bench["engines"])


# ---------------------------------------------------------------------- measurement


def throughput(seconds: Sequence[float], batch_size: int) -> dict[str, float]:
    """Patches per second of timed steps: median, min and max, and the median step time.

    Args:
        seconds: wall-clock seconds of each timed step.
        batch_size: patches per step.

    Raises:
        ValueError: no step, or a step that took no time.

    """
    if not seconds or min(seconds) <= 0:
        raise ValueError(f"need timed steps of positive duration, got {list(seconds)}")
    rates = [batch_size / s for s in seconds]
    return {
        "patches_per_s": statistics.median(rates),
        "patches_per_s_min": min(rates),
        "patches_per_s_max": max(rates),
        "step_seconds": statistics.median(seconds),
    }


def time_steps(
    step: Callable[[], object],
    warmup: int,
    steps: int,
    sync: Callable[[], object] = lambda: None,
) -> list[float]:
    """Run ``warmup`` untimed steps, then time ``steps`` steps one by one.

    Args:
        step: one step (its result is discarded).
        warmup: untimed steps first (allocator, kernel selection, caches).
        steps: timed steps.
        sync: waits for queued work (``torch.cuda.synchronize`` on CUDA), called
            before the clock starts and stops.

    Returns:
        The seconds of each timed step.

    """
    for _ in range(warmup):
        step()
    sync()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def engine_device(engine: Engine) -> torch.device:
    """Return the torch device of an engine; never a quiet fallback to the CPU.

    Raises:
        ConfigError: the CUDA device is not there.

    """
    import torch

    if engine.kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if engine.index >= count:
        raise ConfigError(
            f"bench: engine '{engine.name}' asked for, but torch sees {count} CUDA device(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Leave "
            "`bench.engines` unset to measure the devices found, or run on a machine with "
            "that GPU."
        )
    return torch.device("cuda", engine.index)


def bench_engine(
    *,
    engine: str,
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    bands: int,
    classes: int,
    patch_size: int,
    batch_size: int | None,
    warmup: int,
    steps: int,
    threads: int,
    seed: int,
) -> pd.DataFrame:
    """Measure training and inference throughput of the configured model on one engine.

    Synthetic inputs of the configured shape (standard-normal values, as normalised
    patches are, and random labels) stand in for patches: throughput does not depend
    on the values. A training
    step is the workflow's (autocast at the configured precision, the configured
    loss and optimiser, a gradient scaler for fp16, the configured memory format); an
    inference step is a forward pass and softmax under ``torch.inference_mode``.

    Args:
        engine: ``cpu<N>`` (N torch threads) or ``cuda<K>``.
        model: the config's validated ``model`` section; pretrained weights are never
            downloaded (random weights run at the same speed).
        training: the validated ``training`` section (precision, loss, optimiser, batch).
        bands: input channels (``len(imagery.bands)``).
        classes: output classes.
        patch_size: patch side in pixels (``patches.size``).
        batch_size: patches per step; ``None``: ``training.batch_size``.
        warmup: untimed steps before the timed ones.
        steps: timed steps (median, min and max are kept).
        threads: the job's threads: torch threads of a CUDA engine (its host-side
            work); a CPU engine uses the N of its name (a warning where N is more).
        seed: seed of the weights and inputs.

    Returns:
        One row per mode (``train``, ``infer``): the engine, what was measured, the
        throughput (:func:`throughput`) and the hardware description
        (:data:`HARDWARE_COLUMNS`).

    Raises:
        ConfigError: bad model or training settings, a CUDA device that is not there.

    """
    import torch

    from landcover.hardware import describe_hardware
    from landcover.models.segmentation.loop import resolve_precision
    from landcover.models.segmentation.nets import check_model
    from landcover.models.segmentation.trainer import TrainingSettings

    spec = parse_engine(engine)
    cfg = TrainingSettings.from_mapping(training)
    check_model(model["arch"], model["encoder"], model["encoder_weights"])
    batch = batch_size or cfg.batch_size
    device = _engine_setup(spec, threads)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(seed)
    steps_of = _steps(cfg, model, device, precision, (batch, bands, patch_size, classes))
    hardware = describe_hardware(device, precision, seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    log.info(
        "engine %s: %s/%s, %d x %d px x %d bands, batch %d, %s, %d threads, on %s",
        spec.name, model["arch"], model["encoder"], patch_size, patch_size, bands, batch,
        precision, torch.get_num_threads(), hardware["device_name"],
    )  # fmt: skip
    rows = []
    for mode in MODES:
        set_mode, step, sync = steps_of[mode]
        set_mode()
        measured = throughput(time_steps(step, warmup, steps, sync), batch)
        log.info(
            "engine %s %s: %.1f patches/s (min %.1f, max %.1f)",
            spec.name,
            mode,
            measured["patches_per_s"],
            measured["patches_per_s_min"],
            measured["patches_per_s_max"],
        )
        rows.append(
            {
                "engine": spec.name,
                "device": device.type,
                "device_index": device.index,
                "threads": torch.get_num_threads(),
                "mode": mode,
                **measured,
                "batch_size": batch,
                "patch_size": patch_size,
                "bands": bands,
                "classes": classes,
                "arch": model["arch"],
                "encoder": model["encoder"],
                "precision": precision,
                "warmup": warmup,
                "steps": steps,
                # other processes' load when the job started: a busy machine reads slow
                "load_average": load,
                **{key: hardware[key] for key in HARDWARE_COLUMNS},
            }
        )
    return pd.DataFrame(rows)


def _engine_setup(spec: Engine, threads: int) -> torch.device:
    """The engine's device, with torch's threads (and malloc) set as the workflow sets them."""
    import torch

    from landcover.runtime import tune_malloc

    device = engine_device(spec)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # precision checks and kernels use this device
    if spec.kind == "cpu" and spec.index > threads:
        log.warning(
            "engine %s runs %d threads but its job holds %d cores: other jobs may share "
            "them; run with --cores %d or more",
            spec.name,
            spec.index,
            threads,
            spec.index,
        )
    torch.set_num_threads(spec.index if spec.kind == "cpu" else max(1, threads))
    if spec.kind == "cpu":
        tune_malloc()  # as training and mapping on the CPU do
    return device


def _steps(
    cfg: TrainingSettings,
    model: Mapping[str, Any],
    device: torch.device,
    precision: str,
    shape: tuple[int, int, int, int],
) -> dict[str, tuple[Callable[[], object], Callable[[], object], Callable[[], object]]]:
    """A training step (the workflow's own) and an inference step on synthetic inputs.

    Returns:
        ``{mode: (set_mode, step, sync)}``: ``set_mode`` puts the network in the mode's
        state (train or eval) before timing, ``sync`` waits for queued CUDA work.

    """
    import torch

    from landcover.hardware import resolve_channels_last
    from landcover.models.segmentation.loop import autocast, build_optimizer, train_step
    from landcover.models.segmentation.losses import SegmentationLoss
    from landcover.models.segmentation.nets import build_model

    batch, bands, size, classes = shape
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    net = build_model(model["arch"], model["encoder"], None, bands, classes).to(device)
    images = torch.randn(batch, bands, size, size, device=device)
    labels = torch.randint(0, classes, (batch, size, size), device=device).to(torch.uint8)
    if resolve_channels_last(cfg.channels_last, device):
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    loss_fn = SegmentationLoss(None, cfg.ce_weight, cfg.dice_weight, cfg.focal_gamma).to(device)
    optimizer = build_optimizer(cfg, net, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def train() -> None:
        train_step(net, images, labels, loss_fn, optimizer, scaler, amp_dtype)

    def infer() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, amp_dtype):
            return torch.softmax(net(images).float(), dim=1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return {"train": (net.train, train, sync), "infer": (net.eval, infer, sync)}


def write_engine_table(table: pd.DataFrame, out: str | Path) -> None:
    """Write one engine's table as CSV, atomically."""
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
