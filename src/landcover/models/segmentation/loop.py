"""One training step, one epoch, one validation pass: the loop the trainer and the bench share."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from landcover.classes import IGNORE
from landcover.errors import ConfigError
from landcover.evaluation.metrics import class_scores
from landcover.models.segmentation.data import EpochSampler
from landcover.models.segmentation.distributed import all_gather
from landcover.models.segmentation.losses import SegmentationLoss

if TYPE_CHECKING:
    from landcover.models.segmentation.trainer import TrainingSettings

MIN_DELTA = 1e-4
"""Smallest rise of validation mIoU that counts as an improvement (early stopping)."""


def resolve_precision(precision: str, device: torch.device) -> str:
    """Return the precision actually used: ``auto`` resolved for the device.

    Raises:
        ConfigError: bf16 asked for on a GPU without bf16 support.

    """
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"training.precision: bf16 is not supported by {torch.cuda.get_device_name(device)}; "
            "use auto, fp16 or fp32."
        )
    return precision


def build_optimizer(
    cfg: TrainingSettings, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """Build the configured optimiser (fused Adam/AdamW kernels on CPU and CUDA).

    The fused kernels update all parameters in one pass instead of one kernel per
    parameter tensor, a large share of a small model's step on the CPU
    (``bench/train_efficiency.py`` times the whole step).
    """
    params = model.parameters()
    fused = True if device.type in ("cpu", "cuda") else None
    match cfg.optimizer:
        case "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
        case "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
        case "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
    raise AssertionError(cfg.optimizer)  # pragma: no cover (the schema's enum)


def build_scheduler(
    cfg: TrainingSettings, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once per batch (None: constant)."""
    total = cfg.epochs * steps_per_epoch
    match cfg.schedule:
        case "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
        case "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=total, eta_min=cfg.lr * 0.01
            )
        case "constant":
            return None
    raise AssertionError(cfg.schedule)  # pragma: no cover


def autocast(dev: torch.device, amp_dtype: torch.dtype | None) -> torch.autocast:
    """Autocast at the training precision (a no-op context in fp32)."""
    return torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)


def train_step(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: SegmentationLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (the workflow's, and the bench's): loss and per-patch loss.

    The forward pass runs under autocast at the training precision, the loss in float32;
    an fp16 run scales the gradients (``scaler``).
    """
    with autocast(images.device, amp_dtype):
        logits = net(images)
    loss, per_sample = loss_fn(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, per_sample


def train_epoch(
    net: nn.Module,
    loader: DataLoader,
    loss_fn: SegmentationLoss,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler,
    sampler: EpochSampler,
    dev: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    world: int,
    on_step: Callable[[], None] | None = None,
) -> tuple[float, int, float]:
    """One pass over the sampler's draws; returns mean loss, patches seen (all ranks), lr.

    ``on_step`` runs after every optimiser step (the weights' moving average).
    """
    net.train()
    total = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    indices, losses = [], []
    lr = optimizer.param_groups[0]["lr"]
    for images, labels, idx in loader:
        images = images.to(dev, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(dev, non_blocking=True)
        loss, per_sample = train_step(net, images, labels, loss_fn, optimizer, scaler, amp_dtype)
        lr = optimizer.param_groups[0]["lr"]
        if on_step is not None:
            on_step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach().double() * len(idx)
        count += len(idx)
        indices.append(idx)
        losses.append(per_sample)
    idx_all = torch.cat(indices).to(dev)
    loss_all = torch.cat(losses).double()
    stats = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=dev)])
    if world > 1:
        dist.all_reduce(stats)
        idx_all, loss_all = all_gather(idx_all), all_gather(loss_all)
    sampler.update_losses(idx_all.cpu().numpy(), loss_all.cpu().numpy())
    total_loss, seen = stats.tolist()
    return total_loss / seen, int(seen), float(lr)


@torch.inference_mode()
def validate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: SegmentationLoss,
    dev: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    k: int,
    world: int,
) -> tuple[float, np.ndarray]:
    """Compute validation loss and per-class IoU (NaN for a class neither present nor predicted)."""
    model.eval()
    confusion = torch.zeros(k * k, dtype=torch.int64, device=dev)
    sums = torch.zeros(2, dtype=torch.float64, device=dev)
    for images, labels, _ in loader:
        images = images.to(dev, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(dev, non_blocking=True).long()
        with autocast(dev, amp_dtype):
            logits = model(images)
        loss, _ = loss_fn(logits, labels)
        n = torch.tensor(float(len(labels)), dtype=torch.float64, device=dev)
        sums += torch.stack([loss.double() * n, n])
        valid = labels != IGNORE
        pred = logits.argmax(1)
        confusion += torch.bincount(labels[valid] * k + pred[valid], minlength=k * k)
    if world > 1:
        dist.all_reduce(confusion)
        dist.all_reduce(sums)
    # the evaluation's convention: IoU is NaN for a class absent from the reference, so
    # model selection and the holdout scores average over the same classes
    scores = class_scores(confusion.view(k, k).cpu().numpy())
    return float(sums[0] / sums[1].clamp_min(1)), scores["iou"]


def reset_peak_memory(dev: torch.device) -> None:
    """Start measuring the epoch's peak GPU memory afresh."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory_mb(dev: torch.device, world: int) -> float:
    """Peak memory of the epoch: GPU allocations on CUDA, else the process's peak RSS."""
    if dev.type == "cuda":
        value = torch.cuda.max_memory_allocated(dev) / 2**20
    elif dev.type == "mps":
        value = torch.mps.driver_allocated_memory() / 2**20
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        value = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    if world > 1:
        t = torch.tensor(value, dtype=torch.float64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        value = float(t)
    return float(value)
