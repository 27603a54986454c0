"""Peers: this project's training data path and mapping beside torchgeo's and terratorch's.

Three comparisons, measured side by side in one run on the same synthetic aligned scene
(written as ``align_area`` writes aligned images, see ``bench/scale.py``):

(a) training data path, samples/s: this project's loader as the training loop builds it
    (``tile_area``, ``split_patches`` and ``class_weights`` on the scene, then
    ``prepare_data``, ``PatchDataset``, ``EpochSampler`` and a ``DataLoader``) against
    torchgeo's ``RasterDataset`` (image and labels intersected) with
    ``RandomGeoSampler`` and ``stack_samples`` on the same aligned GeoTIFFs, given the
    same work per sample: the band normalisation of the train patches, a random
    dihedral transform, the patch size and the batch, no worker processes (the
    workflow's CPU setting);
(b) training steps/s of the same U-Net, loss and optimiser (the workflow's
    ``train_step``, channels-last, fp32) fed by each loader;
(c) mapping a scene: :func:`landcover.mapping.scene.predict_scene` (strips of windows
    read from the file, blended, written as a COG) against terratorch's
    ``tiled_inference`` on the image read into memory, its blended probabilities'
    argmax then written as a GeoTIFF; the same network, window (crop), overlap (crop
    less stride), batch and threads, terratorch's other settings left at their
    defaults. Each run maps in a fresh process: seconds of the mapping (imports and
    model excluded), Mpx/s, peak RSS (``VmHWM``) and the floor before mapping.

Rounds are interleaved (ours, theirs, ours, ...), so other load on a shared machine
hits both; the fastest round of each is compared, the ratio of the medians printed
beside it.

torchgeo and terratorch are optional (``pip install -e ".[bench]"``): a missing one is
named with that command and its comparisons are skipped; the script then exits 0.

Usage (from the repository root):
    python bench/peers.py --threads 2
    python bench/peers.py --skip mapping      # (a) and (b) only; --skip training: (c) only
    python bench/peers.py --side 512 --map-side 768 --rounds 1 --encoder tu-mobilenetv3_small_050
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # bench/scale.py: the scene and the chain's calls

PEERS = {
    "torchgeo": "(a) the training data path and (b) training steps against torchgeo",
    "terratorch": "(c) mapping against terratorch's tiled_inference",
}
"""Each optional peer and what the script compares against it."""

Batch = tuple[Any, Any]


def missing_peers() -> list[str]:
    """The peers that are not installed."""
    return [name for name in PEERS if importlib.util.find_spec(name) is None]


def version(name: str) -> str:
    """An installed distribution's version."""
    from importlib.metadata import version as dist_version

    return dist_version(name)


# --------------------------------------------------------------------------- the scene


def prepare_scene(folder: Path, side: int, config: dict[str, Any], threads: int) -> None:
    """Write a scene and run the data half on it (tile, split, class weights)."""
    folder.mkdir(parents=True)
    p = scale.paths(folder)
    scale.write_scene(folder, side, config["imagery"]["bands"], scale.class_names(config), threads)
    for stage in (scale.stage_tile, scale.stage_split, scale.stage_weights):
        stage(p, config, folder)


# --------------------------------------------------------------------------- loaders


def our_loader(folder: Path, config: dict[str, Any], batch: int) -> tuple[Any, Any]:
    """This project's training loader on the scene's patch store; and its training data."""
    from torch.utils.data import DataLoader

    from landcover.models.segmentation.data import EpochSampler, PatchDataset, prepare_data
    from landcover.models.segmentation.trainer import TrainingSettings

    p = scale.paths(folder)
    stores = scale.area_stores(folder)
    classes = scale.class_names(config)
    data = prepare_data(stores, p["index"], p["weights"], config["imagery"]["bands"], classes)
    cfg = TrainingSettings.from_mapping(config["training"])
    dataset = PatchDataset(stores, data.train, data.mean, data.std, cfg.jitter)
    sampler = EpochSampler(len(data.train), config["seed"], None, 0.0, cfg.augment, cfg.jitter > 0)
    return DataLoader(dataset, batch, sampler=sampler, drop_last=True, num_workers=0), data


def dihedral_normalise(mean: list[float], std: list[float], seed: int) -> Callable[[dict], dict]:
    """A torchgeo transform doing what ``PatchDataset`` does to a patch.

    Normalise each band (NaN to 0) and apply one of the 8 dihedral transforms, drawn at
    random, to image and mask alike.
    """
    import torch

    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    rng = np.random.default_rng(seed)

    def transform(sample: dict) -> dict:
        image = torch.nan_to_num_((sample["image"] - m) / s, nan=0.0)
        mask = sample["mask"]
        code = int(rng.integers(8))
        if code % 4:
            image, mask = torch.rot90(image, code % 4, (-2, -1)), torch.rot90(mask, code % 4)
        if code >= 4:
            image, mask = image.flip(-1), mask.flip(-1)
        return sample | {"image": image.contiguous(), "mask": mask.contiguous()}

    return transform


def torchgeo_loader(folder: Path, data: Any, batch: int, seed: int) -> Any:
    """The torchgeo loader of random patches of the aligned image and labels.

    A ``RasterDataset`` per file, intersected (torchgeo's way to pair inputs with
    targets), a ``RandomGeoSampler`` of patches of the store's size and
    ``stack_samples``.
    """
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import IntersectionDataset, RasterDataset, stack_samples
    from torchgeo.samplers import RandomGeoSampler

    class AlignedImage(RasterDataset):
        filename_glob = "image.tif"
        is_image = True

    class AlignedLabels(RasterDataset):
        filename_glob = "labels.tif"
        is_image = False

    aligned = str(scale.paths(folder)["image"].parent)
    dataset = IntersectionDataset(
        AlignedImage(paths=aligned),
        AlignedLabels(paths=aligned),
        transforms=dihedral_normalise(data.mean, data.std, seed),
    )
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomGeoSampler(dataset, size=data.patch_size, length=10**6, generator=generator)
    return DataLoader(
        dataset, batch, sampler=sampler, collate_fn=stack_samples, drop_last=True, num_workers=0
    )


def ours_stream(loader: Any) -> Iterator[Batch]:
    """Endless ``(images, labels)`` batches of this project's loader, epoch after epoch."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        for images, labels, _ in loader:
            yield images, labels
        epoch += 1


def torchgeo_stream(loader: Any) -> Iterator[Batch]:
    """Endless ``(images, labels)`` batches of torchgeo's loader."""
    while True:
        for sample in loader:
            yield sample["image"], sample["mask"]


# --------------------------------------------------------------------------- (a) and (b)


def timed(call: Callable[[], None], n: int) -> float:
    """Seconds of ``n`` calls (after one untimed call: allocator, file handles)."""
    call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - start


def training_step(config: dict[str, Any], data: Any) -> Callable[[Any, Any], None]:
    """The workflow's training step on the config's network (channels-last, fp32)."""
    import torch

    from landcover.models.segmentation.loop import build_optimizer, train_step
    from landcover.models.segmentation.losses import SegmentationLoss
    from landcover.models.segmentation.nets import build_model
    from landcover.models.segmentation.trainer import TrainingSettings

    cfg = TrainingSettings.from_mapping(config["training"])
    model_cfg, classes = config["model"], scale.class_names(config)
    torch.manual_seed(0)
    model = build_model(
        model_cfg["arch"], model_cfg["encoder"], None, data.in_channels, len(classes)
    )
    model = model.to(memory_format=torch.channels_last).train()
    loss_fn = SegmentationLoss(data.class_weights, cfg.ce_weight, cfg.dice_weight, cfg.focal_gamma)
    optimizer = build_optimizer(cfg, model, torch.device("cpu"))
    scaler = torch.amp.GradScaler("cpu", enabled=False)  # fp32, as training on the CPU

    def step(images: Any, labels: Any) -> None:
        images = images.contiguous(memory_format=torch.channels_last)
        train_step(model, images, labels, loss_fn, optimizer, scaler, None)

    return step


def compare_training(args: argparse.Namespace, config: dict[str, Any], folder: Path) -> None:
    """(a) and (b): samples/s of each loader, training steps/s fed by each."""
    batch = config["training"]["batch_size"]
    loader, data = our_loader(folder, config, batch)
    streams = {
        "landcover": ours_stream(loader),
        "torchgeo": torchgeo_stream(torchgeo_loader(folder, data, batch, config["seed"])),
    }
    step = training_step(config, data)
    loading: dict[str, list[float]] = {name: [] for name in streams}
    training: dict[str, list[float]] = {name: [] for name in streams}
    for stream in streams.values():  # warm-up: the model's first steps, file handles
        step(*next(stream))
    for _ in range(args.rounds):  # interleaved: other load on the machine hits both
        for name, stream in streams.items():
            loading[name].append(timed(lambda s=stream: next(s), args.load_batches))
            training[name].append(timed(lambda s=stream: step(*next(s)), args.batches))
    samples = batch * args.load_batches
    model = config["model"]
    print(
        f"\n(a) training data path: {data.patch_size} px patches x {data.in_channels} bands, "
        f"batch {batch}, normalised and a random dihedral transform per patch, no workers"
    )
    report(loading, samples, "samples/s")
    print(
        f"\n(b) training steps of {model['arch']}/{model['encoder']} (channels-last, fp32, "
        f"{config['training']['optimizer']}) fed by each loader"
    )
    report(training, args.batches, "steps/s")


def report(seconds: dict[str, list[float]], count: int, unit: str) -> None:
    """Print each side's best rate and the ratios (fastest rounds; medians)."""
    ours, theirs = seconds["landcover"], seconds["torchgeo"]
    for name, values in seconds.items():
        median = count / statistics.median(values)
        print(f"    {name:<10} {count / min(values):9.2f} {unit} (median {median:.2f})")
    print(
        f"    landcover / torchgeo: {min(theirs) / min(ours):.2f}x (ratio of the medians "
        f"{statistics.median(theirs) / statistics.median(ours):.2f}x)"
    )


# --------------------------------------------------------------------------- (c) mapping


def network(config: dict[str, Any]) -> Any:
    """The config's network with seeded random weights (speed does not depend on them)."""
    import torch

    from landcover.models.segmentation.nets import build_model

    torch.manual_seed(0)
    model = config["model"]
    bands, classes = config["imagery"]["bands"], scale.class_names(config)
    return build_model(model["arch"], model["encoder"], None, len(bands), len(classes)).eval()


NORMALISATION = (0.15, 0.1)
"""Band mean and std of the mapping runs (random weights: any fixed pair does)."""


def map_ours(config: dict[str, Any], image: Path, out: Path, threads: int) -> Callable[[], None]:
    """This project's mapping of ``image`` to a COG (the workflow's scorer and engine)."""
    import torch

    from landcover.classes import ClassMap
    from landcover.mapping.scene import predict_scene
    from landcover.models.segmentation.scorer import SegmentationScorer

    bands = config["imagery"]["bands"]
    meta = {
        "bands": list(bands),
        "classes": scale.class_names(config),
        "mean": [NORMALISATION[0]] * len(bands),
        "std": [NORMALISATION[1]] * len(bands),
        "precision": "fp32",
    }
    scorer = SegmentationScorer(network(config), meta, torch.device("cpu"))
    predict = config["predict"]
    classes = ClassMap.from_config(config["classes"], config["ignore_codes"])

    def run() -> None:
        predict_scene(
            scorer,
            image,
            out,
            classes=classes,
            values="codes",
            window=predict["window"],
            overlap=predict["overlap"],
            batch_size=predict["batch_size"],
            threads=threads,
            progress=False,
        )

    return run


def map_terratorch(
    config: dict[str, Any], image: Path, out: Path, threads: int
) -> Callable[[], None]:
    """Map ``image`` (read whole) with terratorch's tiled inference; the argmax to a GeoTIFF."""
    import rasterio
    import torch
    from terratorch.tasks.tiled_inference import tiled_inference

    from landcover.classes import ClassMap

    net = network(config).to(memory_format=torch.channels_last)  # as this project maps
    predict = config["predict"]
    window, stride = predict["window"], predict["window"] - predict["overlap"]
    classes = ClassMap.from_config(config["classes"], config["ignore_codes"])
    codes = np.array([c[0] for c in classes.codes] + [0], np.uint8)  # nodata: 0, as ours

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(batch.contiguous(memory_format=torch.channels_last)), 1)

    def run() -> None:
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)), rasterio.open(image) as src:
            pixels = src.read(out_dtype="float32")
            profile = src.profile
        valid = np.isfinite(pixels).all(axis=0)
        x = torch.from_numpy(pixels)
        x = torch.nan_to_num_((x - NORMALISATION[0]) / NORMALISATION[1], nan=0.0)
        probabilities = tiled_inference(
            forward,
            x[None],
            out_channels=len(codes) - 1,
            h_crop=window,
            w_crop=window,
            h_stride=stride,
            w_stride=stride,
            batch_size=predict["batch_size"],
        )
        labels = probabilities[0].argmax(0).numpy()
        mapped = codes[np.where(valid, labels, len(codes) - 1)]
        profile.update(count=1, dtype="uint8", nodata=0, compress="deflate", predictor=2)
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)), rasterio.open(out, "w", **profile) as dst:
            dst.write(mapped, 1)

    return run


MAPPERS = {"landcover": map_ours, "terratorch": map_terratorch}


def child_map(name: str, folder: Path, threads: int) -> None:
    """Map the mapping scene with ``name``'s mapper in this process; print JSON figures."""
    import torch

    from landcover.runtime import tune_malloc

    config = json.loads(scale.paths(folder)["settings"].read_text())
    torch.set_num_threads(threads)
    tune_malloc()  # as the workflow's mapping does, for both
    run = MAPPERS[name](config, scale.paths(folder)["image"], folder / f"{name}.tif", threads)
    floor = scale.proc_field("/proc/self/status", "VmHWM") * 1024
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = scale.proc_field("/proc/self/status", "VmHWM") * 1024
    print(json.dumps({"seconds": seconds, "floor": floor, "peak": peak}))


def run_map(name: str, folder: Path, threads: int) -> dict[str, float]:
    """Map in a fresh process; return its figures."""
    env_threads = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [sys.executable, __file__, "--child-map", name, str(folder)]
    command += ["--threads", str(threads)]
    env = {**os.environ, **env_threads}
    run = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if run.returncode:
        raise RuntimeError(f"mapping with {name} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def compare_mapping(args: argparse.Namespace, config: dict[str, Any], folder: Path) -> None:
    """(c): mapping throughput and peak memory, each run in its own process."""
    folder.mkdir(parents=True)
    bands = config["imagery"]["bands"]
    scale.paths(folder)["settings"].write_text(json.dumps(config))
    scale.write_scene(folder, args.map_side, bands, scale.class_names(config), args.threads)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in MAPPERS}
    for _ in range(args.map_rounds):  # interleaved, each in a fresh process
        for name in MAPPERS:
            runs[name].append(run_map(name, folder, args.threads))
    predict, pixels = config["predict"], args.map_side**2
    print(
        f"\n(c) mapping {args.map_side} x {args.map_side} px x {len(bands)} bands "
        f"({config['model']['arch']}/{config['model']['encoder']}, window {predict['window']} "
        f"px, overlap {predict['overlap']} px, batch {predict['batch_size']}), a fresh "
        "process per run"
    )
    best = {name: min(r["seconds"] for r in values) for name, values in runs.items()}
    median = {
        name: statistics.median(r["seconds"] for r in values) for name, values in runs.items()
    }
    peak = {name: max(r["peak"] for r in values) for name, values in runs.items()}
    for name, values in runs.items():
        print(
            f"    {name:<10} {pixels / best[name] / 1e6:7.3f} Mpx/s (median "
            f"{pixels / median[name] / 1e6:.3f}), peak RSS {peak[name] / 2**20:6.0f} MiB "
            f"(floor {max(r['floor'] for r in values) / 2**20:.0f} MiB: imports, model)"
        )
    print(
        f"    landcover / terratorch: speed {best['terratorch'] / best['landcover']:.2f}x "
        f"(ratio of the medians {median['terratorch'] / median['landcover']:.2f}x), peak "
        f"memory {peak['landcover'] / peak['terratorch']:.2f}x"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/config.yaml")
    parser.add_argument("--bands", type=int, default=10, help="first N of imagery.bands")
    parser.add_argument("--arch", help="default: the config's model.arch")
    parser.add_argument("--encoder", help="default: the config's model.encoder")
    parser.add_argument("--side", type=int, default=2048, help="training scene side (px)")
    parser.add_argument("--map-side", type=int, default=4096, help="mapping scene side (px)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of (a), (b)")
    parser.add_argument("--batches", type=int, default=10, help="training steps per round")
    parser.add_argument("--load-batches", type=int, default=50, help="batches loaded per round")
    parser.add_argument("--map-rounds", type=int, default=3, help="interleaved rounds of (c)")
    parser.add_argument("--skip", choices=["training", "mapping"], help="leave out (a)+(b) or (c)")
    parser.add_argument("--threads", type=int, default=2, help="torch and GDAL threads")
    parser.add_argument("--work", help="scratch folder (default: system tmp, removed)")
    parser.add_argument("--child-map", nargs=2, metavar=("NAME", "FOLDER"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    """Print the comparisons whose peers are installed."""
    args = parse_args()
    if args.child_map:
        child_map(args.child_map[0], Path(args.child_map[1]), args.threads)
        return
    missing = missing_peers()
    for name in missing:
        print(f"{name} is not installed: skipping {PEERS[name]}.")
    if missing:
        print('Install the peers with: pip install -e ".[bench]"')
    if len(missing) == len(PEERS):
        return
    import torch

    from landcover.hardware import cpu_model
    from landcover.runtime import tune_malloc

    torch.set_num_threads(args.threads)
    tune_malloc()  # as the workflow's training does on the CPU, for both loaders
    config = scale.bench_config(args.configfile, args.bands, args.arch, args.encoder)
    peers = ", ".join(f"{name} {version(name)}" for name in PEERS if name not in missing)
    print(f"cpu: {cpu_model()}, threads {args.threads}; torch {torch.__version__}, {peers}")
    with tempfile.TemporaryDirectory(dir=args.work, prefix="peers-bench-") as tmp:
        if "torchgeo" not in missing and args.skip != "training":
            folder = Path(tmp) / "training"
            prepare_scene(folder, args.side, config, args.threads)
            bands = len(config["imagery"]["bands"])
            print(f"training scene: {args.side} x {args.side} px, {bands} bands")
            compare_training(args, config, folder)
        if "terratorch" not in missing and args.skip != "mapping":
            compare_mapping(args, config, Path(tmp) / "mapping")


if __name__ == "__main__":
    sys.exit(main())
