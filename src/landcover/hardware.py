"""What a run ran on: device, CPU, GPU and library versions (``hardware.json``)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from landcover.errors import ConfigError
from landcover.io import atomic_path

DEVICES = ("cpu", "cuda", "mps")
"""Values of the ``{device}`` wildcard."""


def resolve_device(device: str) -> torch.device:
    """Return the torch device for the ``{device}`` wildcard; never a quiet fallback to CPU.

    Raises:
        ConfigError: unknown device, or CUDA / MPS asked for where it is not available.

    """
    match device:
        case "cpu":
            return torch.device("cpu")
        case "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(
                    "device 'cuda' was asked for (the {device} wildcard of "
                    "results/models/{experiment}/{device}) but torch.cuda.is_available() is "
                    f"False (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
                    f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                    "Ask for results/models/<experiment>/cpu/ instead, or run on a machine "
                    "with an NVIDIA GPU, its driver and a CUDA build of torch."
                )
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        case "mps":
            if not torch.backends.mps.is_available():
                raise ConfigError(
                    "device 'mps' was asked for but torch.backends.mps.is_available() is "
                    "False (MPS needs Apple silicon and macOS 12.3+); use device cpu."
                )
            return torch.device("mps")
        case _:
            raise ConfigError(f"device: unknown device '{device}'; use one of {list(DEVICES)}.")


def resolve_channels_last(setting: bool | str, device: torch.device) -> bool:
    """Whether the model and batches use the channels-last memory format.

    ``auto`` is on for CPU and CUDA: oneDNN (CPU) and cuDNN's tensor-core kernels run
    convolutions in channels-last without reordering each layer's input (compare
    ``bench/train_efficiency.py --channels-last off``); MPS keeps the default layout.
    Training follows ``training.channels_last``, mapping always ``auto``.
    """
    if setting == "auto":
        return device.type in ("cpu", "cuda")
    return bool(setting)


def cpu_model() -> str:
    """Return the CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                name = line.split(":", 1)[1].strip()
                if name and not name.isdigit():
                    return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_hardware(
    device: str | torch.device,
    precision: str | None = None,
    seed: int | None = None,
    world_size: int = 1,
) -> dict[str, Any]:
    """Describe the machine and software a run uses.

    Args:
        device: the torch device the run computes on (``cpu``, ``cuda[:i]``, ``mps``).
        precision: the precision actually used (``fp32``, ``bf16``, ``fp16``).
        seed: the run's seed.
        world_size: number of processes (GPUs) of a distributed run.

    Returns:
        A JSON-ready dict: ``device``, ``device_name``, ``cpu_model``, ``cpu_count``,
        ``threads`` (torch intra-op threads), ``gpu_name``, ``gpu_memory_gb``,
        ``gpu_count``, ``cuda_visible_devices``, ``world_size``, ``torch``, ``cuda``,
        ``cudnn``, ``python``, ``platform``, ``precision``, ``seed``.

    """
    dev = torch.device(device)
    gpu_name = gpu_memory = None
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        gpu_name, gpu_memory = props.name, round(props.total_memory / 2**30, 2)
    elif dev.type == "mps":
        gpu_name = "Apple MPS"
    cpu = cpu_model()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": dev.type,
        "device_name": gpu_name or cpu,
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu_name": gpu_name,
        "gpu_memory_gb": gpu_memory,
        "gpu_count": torch.cuda.device_count() if dev.type == "cuda" else 0,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "world_size": world_size,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "precision": precision,
        "seed": seed,
    }


def write_hardware_json(path: str | Path, info: dict[str, Any]) -> None:
    """Write ``describe_hardware``'s dict as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
