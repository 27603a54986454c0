"""Training efficiency: data-path efficiency and compute efficiency of a training step.

Data-path efficiency: patches/s of training steps fed by the real pipeline (memory-mapped
patch store, normalisation, dihedral augmentation, DataLoader) over patches/s of the same
steps on a batch already in memory (same model, batch, threads). Goal >= 0.95 on CPU.

Compute efficiency: GFLOP/s achieved by a training step (FLOPs of forward and backward
counted by ``torch.utils.flop_counter``) over the machine's measured 3x3-convolution peak
(the best of a few large fp32 convolutions, measured in every round beside the training
steps, so that other load on the machine hits both). Goal >= 0.55.

Both ratios compare the fastest of the interleaved rounds (other load on a shared
machine only slows a round down, as in ``map_efficiency.py``); the ratios of the
medians are printed beside them.

The training step is the workflow's: model, batch size, memory format (channels-last),
loss and optimiser come from the config (``--configfile``, the demo's by default);
options override them.

Usage (from the repository root, after the data half has run or on a synthetic store):
    python bench/train_efficiency.py --threads 2
    python bench/train_efficiency.py --synthetic 256 --threads 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from landcover.config import validated
from landcover.hardware import cpu_model, resolve_channels_last
from landcover.models.segmentation.data import EpochSampler, PatchDataset, band_stats
from landcover.models.segmentation.loop import build_optimizer, train_step
from landcover.models.segmentation.losses import SegmentationLoss
from landcover.models.segmentation.nets import build_model
from landcover.models.segmentation.trainer import TrainingSettings
from landcover.prepare.store import stores
from landcover.runtime import tune_malloc


def synthetic_store(root: Path, n: int, size: int, bands: int, classes: int) -> Path:
    """Write a one-area store of ``n`` random patches side by side; return its index.

    float16, as tile_area writes by default.
    """
    rng = np.random.default_rng(0)
    (root / "synthetic").mkdir(parents=True)
    pixels = rng.random((size, n * size, bands), np.float32).astype(np.float16)
    np.save(root / "synthetic/images.npy", pixels)
    np.save(root / "synthetic/labels.npy", rng.integers(0, classes, (size, n * size), np.uint8))
    table = pd.DataFrame(
        {"area": "synthetic", "patch": np.arange(n), "row": 0, "col": np.arange(n) * size}
    )
    table["size"], table["split"] = size, "train"
    for k in range(classes):
        table[f"count_{k}"] = size * size // classes
    table.to_parquet(root / "index.parquet")
    return root / "index.parquet"


def conv_peak_gflops(repeat: int = 3) -> float:
    """Measure the best GFLOP/s of large 3x3 fp32 convolutions (forward) on this CPU.

    Both memory formats are tried and the fastest call counts: the peak is the best the
    machine showed, whichever layout the training step uses.
    """
    best = 0.0
    for channels, side in ((64, 64), (128, 32), (256, 16)):
        flops = 2 * 16 * channels * channels * 9 * side * side
        for memory_format in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(16, channels, side, side).contiguous(memory_format=memory_format)
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            conv = conv.to(memory_format=memory_format)
            with torch.no_grad():
                conv(x)
                for _ in range(repeat):
                    start = time.perf_counter()
                    conv(x)
                    best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def timed(step: Callable[[], None], batches: int) -> float:
    """Seconds per call of ``step`` over ``batches`` calls after one warm-up call."""
    step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return (time.perf_counter() - start) / batches


def settings(args: argparse.Namespace) -> tuple[dict, TrainingSettings]:
    """The config's model and training settings, with the command line's overrides."""
    config = validated(yaml.safe_load(Path(args.configfile).read_text()) or {})
    model = dict(config["model"])
    model.update({k: v for k, v in (("arch", args.arch), ("encoder", args.encoder)) if v})
    training = dict(config["training"])
    if args.batch_size:
        training["batch_size"] = args.batch_size
    if args.channels_last is not None:
        training["channels_last"] = args.channels_last == "on"
    return model, TrainingSettings.from_mapping(training)


def main() -> None:
    """Print data-path and compute efficiency of a training step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/config.yaml")
    parser.add_argument("--patches-dir", default="results/patches")
    parser.add_argument("--synthetic", type=int, default=0, help="use N synthetic patches")
    parser.add_argument("--size", type=int, default=64, help="synthetic patch size")
    parser.add_argument("--arch", help="default: the config's model.arch")
    parser.add_argument("--encoder", help="default: the config's model.encoder")
    parser.add_argument("--batch-size", type=int, help="default: training.batch_size")
    parser.add_argument("--channels-last", choices=["on", "off"], help="default: config's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model_cfg, cfg = settings(args)
    tuned = tune_malloc()  # as the workflow's training does (train_model)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    channels_last = resolve_channels_last(cfg.channels_last, cpu)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            patches_dir = Path(tmp)
            index = synthetic_store(patches_dir, args.synthetic, args.size, 10, 9)
        else:
            patches_dir = Path(args.patches_dir)
            index = patches_dir / "index.parquet"
        table = pd.read_parquet(index)
        train = table[table["split"] == "train"].reset_index(drop=True)
        n_classes = sum(c.startswith("count_") for c in table.columns)
        areas = sorted(set(table["area"]))
        store = stores(
            areas,
            [patches_dir / a / "images.npy" for a in areas],
            [patches_dir / a / "labels.npy" for a in areas],
        )
        mean, std = band_stats(store, train)
        dataset = PatchDataset(store, train, mean, std)
        sampler = EpochSampler(len(dataset), seed=0, augment=cfg.augment)
        loader = DataLoader(dataset, cfg.batch_size, sampler=sampler, drop_last=True)
        images, labels, _ = next(iter(loader))
        images = images.contiguous(memory_format=memory_format)
        size, bands = images.shape[-1], images.shape[1]

        model = build_model(model_cfg["arch"], model_cfg["encoder"], None, bands, n_classes)
        model = model.to(memory_format=memory_format).train()
        loss_fn = SegmentationLoss(
            [1.0] * n_classes, cfg.ce_weight, cfg.dice_weight, cfg.focal_gamma
        )
        optimizer = build_optimizer(cfg, model, cpu)
        scaler = torch.amp.GradScaler("cpu", enabled=False)  # fp32, as training on the CPU

        def step(x: torch.Tensor, y: torch.Tensor) -> None:
            # the training loop's own step; its batch is made channels-last on the way in
            x = x.contiguous(memory_format=memory_format)
            train_step(model, x, y, loss_fn, optimizer, scaler, None)

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            epoch = 0
            while True:
                sampler.set_epoch(epoch)
                for x, y, _ in loader:
                    yield x, y
                epoch += 1

        stream = batches()
        raw, pipeline, peaks = [], [], []
        for _ in range(args.rounds):  # interleaved rounds: load on the machine hits all
            raw.append(timed(lambda: step(images, labels), args.batches))
            pipeline.append(timed(lambda: step(*next(stream)), args.batches))
            peaks.append(conv_peak_gflops())
        raw_s, pipe_s = min(raw), min(pipeline)

        with FlopCounterMode(display=False) as counter:
            loss, _ = loss_fn(model(images), labels)
            loss.backward()
        step_gflops = counter.get_total_flops() / 1e9
        peak = max(peaks)

    achieved = step_gflops / raw_s
    print(
        f"cpu: {cpu_model()}, threads {args.threads}, precision fp32, torch {torch.__version__}, "
        f"malloc tuned: {tuned}"
    )
    print(
        f"model {model_cfg['arch']}/{model_cfg['encoder']}, patch {size} px x {bands} bands, "
        f"batch {cfg.batch_size}, {'channels-last' if channels_last else 'NCHW'}, "
        f"{len(train)} train patches, {cfg.optimizer}"
    )
    median_achieved = step_gflops / statistics.median(raw)
    print(f"raw loop (in-memory batch):  {cfg.batch_size / raw_s:8.1f} patches/s")
    print(f"full pipeline (store+aug):   {cfg.batch_size / pipe_s:8.1f} patches/s")
    print(f"data-path efficiency:        {raw_s / pipe_s:8.3f}  (goal >= 0.95)")
    print(f"training step:               {step_gflops:8.2f} GFLOP, {achieved:.1f} GFLOP/s")
    print(f"3x3 convolution peak:        {peak:8.1f} GFLOP/s")
    print(f"compute efficiency:          {achieved / peak:8.3f}  (goal >= 0.55)")
    print(
        f"  fastest of {args.rounds} interleaved rounds; ratios of the medians: data path "
        f"{statistics.median(raw) / statistics.median(pipeline):.3f}, compute "
        f"{median_achieved / statistics.median(peaks):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
