"""Several processes: DistributedDataParallel started as ``torchrun --standalone`` would.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) each process trains one
shard with DistributedDataParallel (NCCL on CUDA, gloo on CPU). With ``processes > 1``
outside ``torchrun``, the trainer starts the processes itself through torch's elastic
launcher (:func:`launch`), the machinery behind ``torchrun --standalone``.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

log = logging.getLogger(__name__)


def launch(
    train: Callable[..., dict[str, Any]], args: dict[str, Any], processes: int
) -> dict[str, Any]:
    """Start ``processes`` local workers as ``torchrun --standalone`` would; rank 0's result."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=f"landcover-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=1.0,
    )
    log.info("starting %d processes (DistributedDataParallel)", processes)
    results = elastic_launch(config, worker)(train, args, _log_file())
    return results[0]


def _log_file() -> str | None:
    """Return the file of the root logger's FileHandler (the rule's log), if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


@record  # a failing process's traceback reaches the launcher's error
def worker(
    train: Callable[..., dict[str, Any]], args: dict[str, Any], log_file: str | None
) -> dict[str, Any]:
    """One process of a launched distributed run: log into the rule's log, then train."""
    if log_file and os.environ.get("RANK") == "0":
        handler: logging.Handler = logging.FileHandler(log_file, mode="a")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s rank{os.environ.get('RANK')} %(message)s")
    )
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    return train(**args)


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of every rank."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def barrier(world: int) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world > 1:
        dist.barrier()
