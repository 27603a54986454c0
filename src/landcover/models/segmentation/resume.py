"""Resume: the per-epoch state of a training run, and the declared outputs made from it.

After each epoch the full state (model, optimiser, schedule, scaler, sampler, history) is
written atomically to the resume folder beside the outputs. That folder is not a
declared Snakemake output, so Snakemake does not delete it when a killed job is rerun;
the rerun continues after the last completed epoch. The declared outputs (best and last
checkpoints, history, hardware) are written only when training ends, after which the
resume folder is removed. A resume state from another configuration or another patch
index (fingerprint mismatch), or one that does not load whole (a truncated ``last.pt`` or
best checkpoint), is discarded with a warning and the run starts afresh.
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
from torch.optim.swa_utils import AveragedModel

from landcover.errors import DataError
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
    ema: AveragedModel | None = None,
) -> bool:
    """Restore a killed run's state in place; False when there is none or it is stale.

    A state written with another configuration or patch index (``identity``, see
    :func:`fingerprint`), or one that does not load whole, is not used: the run starts
    afresh and the caller removes the folder.
    """
    path = resume_dir / "last.pt"
    if not path.exists():
        return True
    ckpt = _readable_state(resume_dir, identity)
    if ckpt is None:
        return False
    core.load_state_dict(ckpt["state_dict"])
    if ema is not None:  # the identity includes training.ema: the state has the average
        ema.load_state_dict(ckpt["ema"])
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


STATE_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "sampler_losses", "rng")
"""What a resume state holds beside the loop's state (:func:`initial_state`)."""


def _readable_state(resume_dir: Path, identity: str) -> dict[str, Any] | None:
    """The resume state of ``resume_dir``, or None (with a warning) when it is unusable.

    Unusable: it does not load (cut off by a full disk or a crash outside the atomic
    writer), it lacks a key, it is another run's (``identity``), or the best checkpoint it
    names does not load. There is no earlier state to fall back to (each epoch's replaces
    the one before), and continuing from the best checkpoint would lose the optimiser, so
    the run starts afresh: slower, never silently different.
    """
    path = resume_dir / "last.pt"
    try:
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("fingerprint") != identity:
            log.warning(
                "%s was written with another configuration or patch index: starting afresh",
                path,
            )
            return None
        missing = [key for key in (*STATE_KEYS, *initial_state()) if key not in ckpt]
        if missing:
            raise DataError(f"'{path}' lacks {missing}")
        if ckpt["best_epoch"] is not None:
            load_checkpoint(best_path(resume_dir, ckpt["best_epoch"]), map_location="cpu")
    except DataError as err:
        log.warning("cannot resume from %s, starting afresh: %s", resume_dir, err)
        return None
    return ckpt


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
    ema: AveragedModel | None = None,
) -> None:
    """Write the epoch's state (and its model, when it is the best so far), atomically.

    With ``ema`` (``training.ema``) the best model is the averaged one (what validation
    scored), and the state holds the average beside the raw weights it continues from.
    """
    epoch = state["epoch"]
    scored = core if ema is None else ema.module
    if improved:  # named by epoch: last.pt says which one is the best
        save_checkpoint(
            best_path(resume_dir, epoch),
            {"state_dict": scored.state_dict(), "meta": meta, "epoch": epoch},
        )
    save_checkpoint(
        resume_dir / "last.pt",
        {
            **({} if ema is None else {"ema": ema.state_dict()}),
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
