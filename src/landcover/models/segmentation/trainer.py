"""Training a segmentation model: one smp network per experiment and device.

:func:`train` checks the settings against the patch store before any training, then
trains with the configured optimiser, schedule, loss, precision and sampling, validates
on the ``val`` split after each epoch, keeps the best model by validation mIoU, stops
early and resumes a killed run (:mod:`.resume`); several processes train with
DistributedDataParallel (:mod:`.distributed`). The settings are the config's validated
``model`` and ``training`` sections: their defaults live in ``config/schema.yaml`` only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from landcover.classes import IGNORE, class_names
from landcover.errors import ConfigError, DataError
from landcover.hardware import resolve_channels_last, resolve_device
from landcover.models.segmentation.data import (
    EpochSampler,
    PatchData,
    PatchDataset,
    check_positive_class,
    positive_class_index,
    prepare_data,
    rare_class_weights,
)
from landcover.models.segmentation.distributed import barrier, launch
from landcover.models.segmentation.loop import (
    MIN_DELTA,
    build_optimizer,
    build_scheduler,
    peak_memory_mb,
    reset_peak_memory,
    resolve_precision,
    train_epoch,
    validate,
)
from landcover.models.segmentation.losses import SegmentationLoss
from landcover.models.segmentation.nets import build_model, check_model
from landcover.models.segmentation.resume import (
    Outputs,
    finalise,
    fingerprint,
    initial_state,
    load_state,
    save_state,
)
from landcover.prepare.store import Store, Stores
from landcover.runtime import tune_malloc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    """The config's validated ``training`` section (the schema gives each key and default).

    ``num_workers: auto`` = 0 on CPU (reading a patch is a memory-mapped copy; workers
    would take the cores from the model), on CUDA the process's threads less one, at
    most 4; ``channels_last: auto`` = on CPU and CUDA, off on MPS.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    momentum: float
    schedule: str
    patience: int
    ce_weight: float
    dice_weight: float
    focal_gamma: float
    augment: bool
    jitter: float
    ema: float
    oversample_rare: float
    hard_mining: float
    positive_fraction: float | None
    positive_class: str | None
    positive_hard_negatives: float
    precision: str
    channels_last: bool | str
    compile: bool
    num_workers: int | str
    deterministic: bool
    seed: int | None = None  # the workflow resolves it into the run's ``seed``

    @classmethod
    def from_mapping(cls, training: Mapping[str, Any]) -> TrainingSettings:
        """The settings, with the one check the schema cannot make (the loss's two weights).

        Raises:
            ConfigError: naming the keys and the fix.

        """
        settings = cls(**dict(training))
        if settings.ce_weight + settings.dice_weight <= 0:
            raise ConfigError(
                "training.dice_weight: training.ce_weight + training.dice_weight must be > 0 "
                f"(got {settings.ce_weight} + {settings.dice_weight}); give the loss a term."
            )
        return settings


@dataclass
class Run:
    """One process's view of a training run: where it runs and what it trains on."""

    cfg: TrainingSettings
    dev: torch.device
    rank: int
    world: int
    data: PatchData
    stores: Stores
    outputs: Outputs
    meta: dict[str, Any]
    identity: str


def train(
    *,
    stores: Mapping[str, Store],
    index: str | Path,
    class_weights: str | Path,
    outputs: Outputs,
    bands: Sequence[str],
    classes: Sequence[str | Mapping[str, Any]],
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    device: str,
    threads: int,
    seed: int,
    processes: int,
) -> dict[str, Any]:
    """Train a segmentation model on the patch stores; write the declared outputs.

    Writes ``outputs.best`` (best validation mIoU), ``outputs.last`` (full state of the
    last epoch), ``outputs.history`` (one row per epoch) and ``outputs.hardware``.

    Args:
        stores: every area's patch store (area -> arrays).
        index: the patch index (``results/patches/index.parquet``) with the ``split``.
        class_weights: ``class_weights.json``.
        outputs: the declared output files.
        bands: the config's ``imagery.bands`` (the model's input channels, in order).
        classes: the config's ``classes`` (dicts with ``name``) or class names.
        model: the experiment's validated ``model`` section (``arch``, ``encoder``,
            ``encoder_weights``; ``kind`` is the registry's).
        training: the experiment's validated ``training`` section.
        device: ``cpu``, ``cuda`` or ``mps``.
        threads: CPU threads (``torch.set_num_threads``; shared among local processes).
        seed: seed of initialisation, sampling and augmentation.
        processes: processes (GPUs) of a DistributedDataParallel run started here;
            ignored under ``torchrun``, which starts the processes itself.

    Returns:
        A summary: ``best_epoch``, ``best_miou``, ``epochs`` (completed), ``precision``.

    Raises:
        ConfigError: bad settings, unavailable device, config not matching the patch store.
        DataError: unusable patch store or class weights.

    """
    net = {key: model[key] for key in ("arch", "encoder", "encoder_weights")}
    check_model(net["arch"], net["encoder"], net["encoder_weights"])
    check_positive_class(training["positive_class"], class_names(classes))
    args: dict[str, Any] = {
        "stores": dict(stores),
        "index": str(index),
        "class_weights": str(class_weights),
        "outputs": outputs,
        "bands": [str(b) for b in bands],
        "classes": class_names(classes),
        "model": net,
        "training": dataclasses.asdict(TrainingSettings.from_mapping(training)),
        "device": device,
        "threads": int(threads),
        "seed": int(seed),
    }
    resolve_device(device)
    if processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # check everything once before starting the processes
        prepare_data(stores, index, class_weights, args["bands"], args["classes"])
        return launch(train_process, args, processes)
    return train_process(**args)


def train_process(
    *,
    stores: Stores,
    index: str,
    class_weights: str,
    outputs: Outputs,
    bands: list[str],
    classes: list[str],
    model: dict[str, Any],
    training: dict[str, Any],
    device: str,
    threads: int,
    seed: int,
) -> dict[str, Any]:
    """Train in this process (one rank under DDP). Arguments are checked by :func:`train`."""
    cfg = TrainingSettings(**training)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    dev = resolve_device(device)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    torch.set_num_threads(max(1, threads // local_world))
    if dev.type == "cpu":
        tune_malloc()
    _seed_everything(seed, cfg.deterministic, dev)
    try:
        data = prepare_data(stores, index, class_weights, bands, classes)
        precision = resolve_precision(cfg.precision, dev)
        meta = _meta(cfg, data, model, bands, classes, precision, seed, dev, world)
        run = Run(
            cfg, dev, rank, world, data, stores, outputs, meta, fingerprint(meta, data.index_sha256)
        )
        return _fit(run, model, seed)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _seed_everything(seed: int, deterministic: bool, dev: torch.device) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if deterministic:
        if dev.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _meta(
    cfg: TrainingSettings,
    data: PatchData,
    model: dict[str, Any],
    bands: list[str],
    classes: list[str],
    precision: str,
    seed: int,
    dev: torch.device,
    world: int,
) -> dict[str, Any]:
    """What a checkpoint says about itself (read back by the scorer and the resume check)."""
    return {
        "model": dict(model),
        "bands": list(bands),
        "classes": list(classes),
        "in_channels": data.in_channels,
        "patch_size": data.patch_size,
        "mean": data.mean,
        "std": data.std,
        "ignore_index": IGNORE,
        "precision": precision,
        "training": dataclasses.asdict(cfg),
        "seed": seed,
        "device": dev.type,
        "world_size": world,
    }


def _batching(run: Run) -> tuple[int, int]:
    """Batch size and steps per epoch of each process (the last partial batch is dropped).

    Raises:
        DataError: fewer than 2 train patches per process (batch norm needs 2).

    """
    n = len(run.data.train)
    per_rank = math.ceil(n / run.world)
    if per_rank < 2:
        raise DataError(
            f"patch index: {n} train patches for {run.world} process(es); each needs "
            "at least 2 (batch norm). Use more areas or a smaller `patches.size`."
        )
    batch_size = min(run.cfg.batch_size, per_rank)
    return batch_size, per_rank // batch_size


def _loaders(run: Run, sampler: EpochSampler, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """The train loader (drawn by the sampler) and this rank's share of the validation patches."""
    num_workers = run.cfg.num_workers
    if num_workers == "auto":
        # the process's share of the job's threads, less one for the training loop
        num_workers = 0 if run.dev.type != "cuda" else min(4, max(1, torch.get_num_threads() - 1))
    kwargs: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": run.dev.type == "cuda",
        "persistent_workers": num_workers > 0,
    }
    data = run.data
    train_loader = DataLoader(
        PatchDataset(
            run.stores, data.train, data.mean, data.std, run.cfg.jitter, _positive_class(run)
        ),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        **kwargs,
    )
    val_loader = DataLoader(
        PatchDataset(run.stores, data.val, data.mean, data.std),
        batch_size=batch_size * 2,
        sampler=list(range(run.rank, len(data.val), run.world)),
        **kwargs,
    )
    return train_loader, val_loader


def _positive_class(run: Run) -> int | None:
    """The index of `training.positive_class` when positive sampling is on, else None."""
    if run.cfg.positive_fraction is None:
        return None
    classes = run.meta["classes"]
    counts = run.data.train[[f"count_{c}" for c in classes]].to_numpy()
    return positive_class_index(counts, classes, run.cfg.positive_class)


def _positive_patches(run: Run) -> np.ndarray | None:
    """Which train patches hold the positive class (positive sampling), else None.

    Raises:
        DataError: no train patch holds it.

    """
    positive = _positive_class(run)
    if positive is None:
        return None
    name = run.meta["classes"][positive]
    positives = run.data.train[f"count_{name}"].to_numpy() > 0
    if not positives.any():
        raise DataError(
            f"training.positive_fraction: no train patch holds class '{name}'; set "
            "training.positive_class to a class of the training areas (or null for the "
            "rarest), or add an area where it occurs."
        )
    log.info(
        "positive sampling: %.0f%% of each epoch's draws from the %d of %d train patches "
        "that hold '%s', centred on it; %.0f%% of the others the hardest negatives",
        100 * run.cfg.positive_fraction,
        positives.sum(),
        len(positives),
        name,
        100 * run.cfg.positive_hard_negatives,
    )
    return positives


@dataclass
class Parts:
    """What the epochs work with: network, loss, optimiser, schedule, sampler, loaders."""

    core: nn.Module
    loss_fn: SegmentationLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    sampler: EpochSampler
    batch_size: int
    amp_dtype: torch.dtype | None
    channels_last: bool
    ema: AveragedModel | None = None  # training.ema: the averaged weights
    # set by _wrap once a killed run's state is restored
    net: nn.Module | None = None
    train_loader: DataLoader | None = None
    val_loader: DataLoader | None = None


def _fit(run: Run, model_cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Build the model and its optimiser, restore a killed run, train epochs, write outputs."""
    parts = _build(run, model_cfg, seed)
    state = initial_state()
    resume_dir = run.outputs.resume_dir
    fresh = load_state(
        resume_dir,
        run.identity,
        parts.core,
        parts.optimizer,
        parts.scheduler,
        parts.scaler,
        parts.sampler,
        state,
        parts.ema,
    )
    barrier(run.world)  # every rank has read the resume state before it may go
    if not fresh and run.rank == 0:
        shutil.rmtree(resume_dir)
    _wrap(run, parts)
    while state["epoch"] < run.cfg.epochs and not state["stopped"]:
        _epoch(run, parts, state)
    precision = run.meta["precision"]
    if run.rank == 0:
        finalise(run.outputs, state, run.dev, precision, seed, run.world)
    barrier(run.world)
    return {
        "best_epoch": state["best_epoch"],
        "best_miou": state["best_miou"],
        "epochs": state["epoch"],
        "precision": precision,
    }


def _build(run: Run, model_cfg: dict[str, Any], seed: int) -> Parts:
    """The network, loss, optimiser, schedule, sampler and loaders of a run."""
    cfg, dev, data, classes = run.cfg, run.dev, run.data, run.meta["classes"]
    precision = run.meta["precision"]
    channels_last = resolve_channels_last(cfg.channels_last, dev)
    torch.manual_seed(seed)
    core = build_model(
        model_cfg["arch"],
        model_cfg["encoder"],
        model_cfg["encoder_weights"],
        data.in_channels,
        len(classes),
    ).to(dev)
    if channels_last:
        core = core.to(memory_format=torch.channels_last)
    loss_fn = SegmentationLoss(
        data.class_weights, cfg.ce_weight, cfg.dice_weight, cfg.focal_gamma
    ).to(dev)
    batch_size, steps_per_epoch = _batching(run)
    optimizer = build_optimizer(cfg, core, dev)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    base = None
    if cfg.oversample_rare > 0:
        counts = data.train[[f"count_{c}" for c in classes]].to_numpy()
        base = rare_class_weights(counts, cfg.oversample_rare)
    sampler = EpochSampler(
        len(data.train),
        seed,
        base,
        cfg.hard_mining,
        cfg.augment,
        cfg.jitter > 0,
        rank=run.rank,
        world_size=run.world,
        positives=_positive_patches(run),
        positive_fraction=cfg.positive_fraction or 0.0,
        hard_negatives=cfg.positive_hard_negatives,
    )
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    parts = Parts(
        core, loss_fn, optimizer, scheduler, scaler, sampler, batch_size, amp_dtype, channels_last
    )
    if cfg.ema > 0:  # torch's own averaging (buffers too: batch-norm statistics)
        parts.ema = AveragedModel(
            core, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True
        )
    log.info(
        "training %s/%s on %s (%d process(es), %d threads, %s): %d train and %d val patches "
        "of %d px, batch %d, %d steps per epoch",
        model_cfg["arch"],
        model_cfg["encoder"],
        dev,
        run.world,
        torch.get_num_threads(),
        precision,
        len(data.train),
        len(data.val),
        data.patch_size,
        batch_size,
        steps_per_epoch,
    )
    return parts


def _wrap(run: Run, parts: Parts) -> None:
    """Wrap the network for several processes (DDP) or compilation, and make the loaders."""
    net: nn.Module = parts.core
    if run.world > 1:
        device_ids = [run.dev.index] if run.dev.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(parts.core, device_ids=device_ids)
    if run.cfg.compile:
        net = torch.compile(net)
    parts.net = net
    parts.train_loader, parts.val_loader = _loaders(run, parts.sampler, parts.batch_size)


def _epoch(run: Run, parts: Parts, state: dict[str, Any]) -> None:
    """Train one epoch, validate, record it and save the resume state (rank 0)."""
    classes = run.meta["classes"]
    parts.sampler.set_epoch(state["epoch"])
    reset_peak_memory(run.dev)
    start = time.perf_counter()
    train_loss, seen, lr = train_epoch(
        parts.net,
        parts.train_loader,
        parts.loss_fn,
        parts.optimizer,
        parts.scheduler,
        parts.scaler,
        parts.sampler,
        run.dev,
        parts.amp_dtype,
        parts.channels_last,
        run.world,
        on_step=None if parts.ema is None else lambda: parts.ema.update_parameters(parts.core),
    )
    train_s = time.perf_counter() - start
    val_loss, iou = validate(
        parts.core if parts.ema is None else parts.ema.module,
        parts.val_loader,
        parts.loss_fn,
        run.dev,
        parts.amp_dtype,
        parts.channels_last,
        len(classes),
        run.world,
    )
    row = _history_row(state["epoch"] + 1, lr, train_loss, val_loss, iou, classes)
    row |= {
        "epoch_seconds": time.perf_counter() - start,
        "train_patches_per_s": seen / train_s,
        "peak_memory_mb": peak_memory_mb(run.dev, run.world),
    }
    improved = _record_epoch(state, row, run.cfg)
    if run.rank == 0:
        meta = run.meta | {"epoch": state["epoch"], "val_miou": row["val_miou"]}
        save_state(
            run.outputs.resume_dir,
            run.identity,
            meta,
            parts.core,
            parts.optimizer,
            parts.scheduler,
            parts.scaler,
            parts.sampler,
            state,
            improved,
            parts.ema,
        )
    barrier(run.world)


def _history_row(
    epoch: int, lr: float, train_loss: float, val_loss: float, iou: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """The epoch's row of ``history.csv`` (times and memory are added by the caller)."""
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    row: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_miou": miou,
    }
    return row | {f"iou_{name}": float(v) for name, v in zip(classes, iou, strict=True)}


def _record_epoch(state: dict[str, Any], row: dict[str, Any], cfg: TrainingSettings) -> bool:
    """Add the epoch to the state, keep the best, decide on early stopping; True if improved."""
    miou = row["val_miou"]
    improved = math.isfinite(miou) and (
        state["best_miou"] is None or miou > state["best_miou"] + MIN_DELTA
    )
    state["epoch"] = row["epoch"]
    state["history"] = [*state["history"], row]
    if improved:
        state["best_miou"], state["best_epoch"], state["bad_epochs"] = miou, row["epoch"], 0
    else:
        state["bad_epochs"] += 1
    if cfg.patience and state["bad_epochs"] >= cfg.patience:
        state["stopped"] = True
        log.info("early stop: no validation mIoU gain for %d epochs", cfg.patience)
    log.info(
        "epoch %d/%d: train loss %.4f, val loss %.4f, val mIoU %.4f%s (%.1f s, %.1f patches/s)",
        row["epoch"],
        cfg.epochs,
        row["train_loss"],
        row["val_loss"],
        miou,
        " *" if improved else "",
        row["epoch_seconds"],
        row["train_patches_per_s"],
    )
    return improved
