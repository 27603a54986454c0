"""Resume: the per-epoch state of a training run, and the declared outputs made from it.

After each epoch the full state (model, optimiser, schedule, scaler, sampler, history) is
written atomically to the resume folder beside the outputs. That folder is not a
declared Snakemake output, so Snakemake does not delete it when a killed job is rerun;
the rerun continues after the last completed epoch. The declared outputs (best and last
checkpoints, history, hardware) are written only when training ends, after which the
resume folder is removed. A resume state from another configuration or another patch
index (fingerprint mismatch) is discarded with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from landcover.hardware import (
    describe_hardware,
    write_hardware_json,
)
from landcover.io import atomic_path
from landcover.models import Outputs
from landcover.models.segmentation.data import EpochSampler
from landcover.models.segmentation.nets import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


NOT_STATE = ("num_workers", "compile")
"""Training keys that may change between a killed run and its resumption."""


def best_path(resume_dir: Path, epoch: int | None) -> Path:
    """The resume folder's best checkpoint of an epoch (``best-last.pt`` when none)."""
    return resume_dir / ("best-last.pt" if epoch is None else f"best-{epoch:04d}.pt")


def fingerprint(meta: dict[str, Any], index_sha256: str) -> str:
    """Identify what a resume state must match: config, seed, processes, patch index."""
    keys = ("model", "bands", "classes", "precision", "seed", "world_size")
    identity = {key: meta[key] for key in keys} | {"index": index_sha256}
    identity["training"] = {k: v for k, v in meta["training"].items() if k not in NOT_STATE}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def initial_state() -> dict[str, Any]:
    """The loop's state before the first epoch."""
    return {
        "epoch": 0,
        "best_miou": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "stopped": False,
        "history": [],
    }


def load_state(
    resume_dir: Path,
    identity: str,
    core: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler,
    sampler: EpochSampler,
    state: dict[str, Any],
) -> bool:
    """Restore a killed run's state in place; False when there is none or it is stale.

    A state written with another configuration or patch index (``identity``, see
    :func:`fingerprint`) is not used; the caller removes it.
    """
    path = resume_dir / "last.pt"
    if not path.exists():
        return True
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("fingerprint") != identity:
        log.warning(
            "%s was written with another configuration or patch index: starting afresh", path
        )
        return False
    core.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    sampler.losses = ckpt["sampler_losses"].numpy().astype(np.float64)
    torch.set_rng_state(ckpt["rng"]["torch"])
    for key in state:
        state[key] = ckpt[key]
    log.info("resuming from %s after epoch %d", path, state["epoch"])
    return True


def save_state(
    resume_dir: Path,
    identity: str,
    meta: dict[str, Any],
    core: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler,
    sampler: EpochSampler,
    state: dict[str, Any],
    improved: bool,
) -> None:
    """Write the epoch's state (and its model, when it is the best so far), atomically."""
    epoch = state["epoch"]
    if improved:  # named by epoch: last.pt says which one is the best
        save_checkpoint(
            best_path(resume_dir, epoch),
            {"state_dict": core.state_dict(), "meta": meta, "epoch": epoch},
        )
    save_checkpoint(
        resume_dir / "last.pt",
        {
            "state_dict": core.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "sampler_losses": torch.from_numpy(sampler.losses.copy()),
            "rng": {"torch": torch.get_rng_state()},
            "meta": meta,
            "fingerprint": identity,
            **state,
        },
    )
    for path in resume_dir.glob("best-*.pt"):  # older bests, or one a kill orphaned
        if path != best_path(resume_dir, state["best_epoch"]):
            path.unlink()


def finalise(
    outputs: Outputs,
    state: dict[str, Any],
    dev: torch.device,
    precision: str,
    seed: int,
    world: int,
) -> None:
    """Write the declared outputs from the resume folder, then remove it."""
    resume_dir = outputs.resume_dir
    best = best_path(resume_dir, state["best_epoch"])
    if state["best_epoch"] is None:  # validation never gave a finite mIoU
        log.warning("no finite validation mIoU in any epoch: the best model is the last epoch's")
        last = load_checkpoint(resume_dir / "last.pt")
        save_checkpoint(best, {k: last[k] for k in ("state_dict", "meta", "epoch")})
    with atomic_path(outputs.history) as tmp:
        pd.DataFrame(state["history"]).to_csv(tmp, index=False)
    write_hardware_json(outputs.hardware, describe_hardware(dev, precision, seed, world))
    for source, target in ((best, outputs.best), (resume_dir / "last.pt", outputs.last)):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    shutil.rmtree(resume_dir)
    log.info(
        "done: best val mIoU %s at epoch %s; wrote %s",
        state["best_miou"],
        state["best_epoch"],
        outputs.best,
    )
