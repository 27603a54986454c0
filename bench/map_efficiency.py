"""Mapping efficiency: throughput of full-scene mapping, and its peak memory on large scenes.

Throughput: windows/s of :func:`landcover.mapping.scene.predict_scene` on a scene written to
disk, the model wrapped in its scorer (``SegmentationScorer``: read, batch, normalise,
forward, softmax, blend, write, COG), over windows/s of a raw loop of forward passes of the
same (channels-last) model on in-memory tensors, with the same windows in the same
batches (one batch per group of ``batch`` windows of a strip) and the same threads. The
overlap is accounted for by counting windows, not scene pixels. Both are timed in
interleaved rounds and the fastest round of each is compared (on a shared machine other
load only slows a round down); the ratio of the medians is printed too.
Goal >= 0.9 on CPU.

Memory: peak resident memory (``VmHWM``) of a fresh process that maps a large scene
(20000 x 20000 px by default) and a 5000 x 5000 px one. Goal: <= 1.5 GB, and the large
scene's peak within 20 % of the small scene's. These runs measure the mapper (strip
accumulation, windowed reads and writes, the COG conversion), not the network: they use a
tiny convolutional net (``--memory-model conv``: two 3x3 convolutions) so that 20000^2 px
map in minutes on a CPU; ``--memory-model tu-mobilenetv3_small_050`` uses a small smp
U-Net. The synthetic input is laid out as ``align_area`` writes aligned images (float32,
256 px tiles, band interleaved, ZSTD) with ``--memory-bands``
bands (3 by default: 10 bands of 20000^2 px would be 16 GB uncompressed) holding a
blocky pattern that compresses a hundredfold, so writing and reading it is cheap; it is
written 504 rows at a time. Each peak includes the process's floor (Python, torch -
about 0.7 GB resident for a CUDA build -, GDAL, the model and one forward batch),
printed beside it.

The throughput scene is laid out like a real aligned image: the config's bands
(``imagery.bands``) hold random reflectance on the DN grid at each band's native
resolution, so the 20 m bands repeat each value 2 x 2 on the 10 m grid, as
``align_area`` writes them from Sentinel-2: it compresses about as well as real
aligned imagery (ZSTD level 1), where noise in every pixel of every band would barely
compress and decode slower. Its size on disk, as a share of the raw float32, is
printed.

The mapping runs twice per round: the map alone (the goal), and the map with its
confidence raster (``predict.confidence``, on in the demo config), which adds a second
COG.

``--engine onnx`` also maps the same windows with the model exported to ONNX
(:func:`landcover.models.segmentation.export.export_onnx`, run by onnxruntime: the
``predict.engine: onnx`` path) in each round, and prints its speed against torch's.

Usage (from the repository root):
    python bench/map_efficiency.py --threads 2
    python bench/map_efficiency.py --skip-memory --engine onnx
    python bench/map_efficiency.py --skip-memory --encoder resnet34
    python bench/map_efficiency.py --skip-throughput --large 20000 --small 5000
    python bench/map_efficiency.py --skip-throughput --pixel-scene 13896x81786
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import rasterio
import torch
import yaml
from affine import Affine

from landcover.classes import ClassMap
from landcover.grid import Grid
from landcover.hardware import cpu_model
from landcover.mapping.engine import chunk_shape, strip_memory_bytes, window_starts
from landcover.mapping.scene import predict_scene
from landcover.models import Scorer
from landcover.models.segmentation.scorer import SegmentationScorer
from landcover.prepare.align import image_profile
from landcover.runtime import tune_malloc
from landcover.sources.sentinel2 import BAND_RESOLUTION

DEFAULT_BANDS = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
"""The throughput scene's bands when the config names none."""

PALETTE = ["#006400", "#ffbb22", "#ffff4c", "#f096ff", "#fa0000", "#b4b4b4", "#0064c8"]


def class_map(n_classes: int) -> ClassMap:
    """A class map of ``n_classes`` classes with codes 10, 20, ... (as WorldCover's)."""
    return ClassMap.from_config(
        [
            {"name": f"class{k}", "codes": [10 * (k + 1)], "colour": PALETTE[k % len(PALETTE)]}
            for k in range(n_classes)
        ]
    )


def tiny_net(bands: int, n_classes: int) -> torch.nn.Module:
    """Two 3x3 convolutions: cheap enough to map 20000^2 px on a CPU."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(bands, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, n_classes, 3, padding=1),
    ).eval()


def unet(arch: str, encoder: str, bands: int, n_classes: int) -> torch.nn.Module:
    """An smp model with random weights (the import of smp and timm happens here)."""
    # imported here: the conv runs do without smp and timm
    from landcover.models.segmentation.nets import build_model

    torch.manual_seed(0)
    return build_model(arch, encoder, None, bands, n_classes).eval()


def memory_model(name: str, bands: int, n_classes: int) -> torch.nn.Module:
    """The net of the memory runs: ``conv`` (:func:`tiny_net`) or a U-Net with encoder ``name``."""
    return tiny_net(bands, n_classes) if name == "conv" else unet("unet", name, bands, n_classes)


def scorer(
    net: torch.nn.Module, bands: int, n_classes: int, names: Sequence[str] = ()
) -> SegmentationScorer:
    """``net`` as the mapping engine's scorer on the CPU, as a checkpoint's would load.

    Normalised with mean 0.15 and std 0.1 in each of ``bands`` bands; ``names``: the band
    names (none: the image's bands in file order; the synthetic scenes have no band
    descriptions, so names are matched by position either way).
    """
    meta = {
        "bands": list(names),
        "classes": list(class_map(n_classes).names),
        "mean": [0.15] * bands,
        "std": [0.1] * bands,
        "precision": "fp32",
    }
    return SegmentationScorer(net, meta, torch.device("cpu"))


def write_scene(
    path: Path,
    height: int,
    width: int,
    bands: int,
    *,
    pixel_sizes: Sequence[int] = (),
    rows: int = 504,
    georeferenced: bool = True,
) -> Path:
    """Write a synthetic aligned image (float32, NaN nodata), ``rows`` rows at a time.

    By default the pattern is blocky (a few distinct values per band), so that ZSTD
    shrinks it a hundredfold and the map holds several classes. With ``pixel_sizes``
    (metres, one per band) the values are random reflectance on the DN grid
    (``DN * 1e-4 - 0.1``), one value per native pixel: a 20 m band repeats each value
    over 2 x 2 px of the 10 m grid. A 300 px square in the upper left is nodata. Without
    ``georeferenced`` the scene has no CRS (an area given as a pixel window).
    """
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 5000000), width, height)
    if not georeferenced:
        grid = Grid(None, Affine.identity(), width, height)  # type: ignore[arg-type]
    # laid out and compressed as align_area writes aligned images
    profile = {**image_profile(grid, bands), "BIGTIFF": "YES"}
    rng = np.random.default_rng(0)
    x = np.arange(width)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, height, rows):  # rows: a multiple of 6 (10, 20 and 60 m pixels)
            y = np.arange(top, min(top + rows, height))[:, None]
            block = np.empty((bands, len(y), width), np.float32)
            for b in range(bands):
                if pixel_sizes:
                    f = pixel_sizes[b] // 10
                    coarse = rng.integers(1200, 5000, (-(-len(y) // f), -(-width // f)))
                    fine = np.repeat(np.repeat(coarse, f, axis=0), f, axis=1)
                    block[b] = fine[: len(y), :width] * 1e-4 - 0.1
                else:
                    block[b] = 0.05 * (((y // (37 + 11 * b)) + (x // (53 + 7 * b))) % 7)
            block[:, : max(0, min(300, height) - top), :300] = np.nan
            dst.write(block, window=rasterio.windows.Window(0, top, width, len(y)))
    return path


def vm_hwm() -> int:
    """Peak resident memory of this process so far (``VmHWM``), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child_map(args: argparse.Namespace) -> None:
    """Map ``args.child`` (image path) in this process; print peak memory as JSON."""
    image, out = Path(args.child[0]), Path(args.child[1])
    with rasterio.open(image) as src:
        bands = src.count
    torch.set_num_threads(args.threads)
    model = scorer(memory_model(args.memory_model, bands, args.classes), bands, args.classes)
    # one batch first: the floor of imports, model and forward
    model(torch.zeros(args.batch_size, bands, args.window, args.window))
    floor = vm_hwm()
    start = time.perf_counter()
    predict_scene(
        model,
        image,
        out,
        classes=class_map(args.classes),
        values="codes",
        window=args.window,
        overlap=args.overlap,
        batch_size=args.batch_size,
        threads=args.threads,
        progress=False,
    )
    seconds = time.perf_counter() - start
    print(json.dumps({"floor": floor, "peak": vm_hwm(), "seconds": seconds}))


def measure_memory(
    args: argparse.Namespace, side: int | tuple[int, int], work: Path
) -> dict[str, float]:
    """Write a scene and map it in a fresh process; return its figures.

    ``side``: a square georeferenced scene's side, or ``(height, width)`` of one without
    a CRS.
    """
    height, width = (side, side) if isinstance(side, int) else side
    image = work / f"scene_{height}x{width}.tif"
    start = time.perf_counter()
    write_scene(image, height, width, args.memory_bands, georeferenced=isinstance(side, int))
    written = time.perf_counter() - start
    out = work / f"map_{height}x{width}.tif"
    command = [sys.executable, __file__, "--child", str(image), str(out)]
    for flag in ("threads", "classes", "window", "overlap", "batch_size", "memory_model"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"mapping {side}^2 px failed:\n{run.stderr}")
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    figures["written"] = written
    figures["input_mb"] = image.stat().st_size / 1e6
    with rasterio.open(out) as mapped:
        figures["map_crs"] = str(mapped.crs)
        figures["map_shape"] = [mapped.height, mapped.width]
    image.unlink()
    return figures


def strip_batches(height: int, width: int, window: int, overlap: int, batch: int) -> list[int]:
    """Sizes of the batches the mapper runs: groups of ``batch`` windows within each strip."""
    n_cols = len(window_starts(width, window, overlap))
    per_strip = [min(batch, n_cols - first) for first in range(0, n_cols, batch)]
    return per_strip * len(window_starts(height, window, overlap))


class TimedModel(torch.nn.Module):
    """Wraps a model and adds up the seconds spent in its forward passes."""

    def __init__(self, model: torch.nn.Module) -> None:
        """Wrap ``model``."""
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped model, timing it."""
        start = time.perf_counter()
        out = self.model(x)
        self.seconds += time.perf_counter() - start
        return out


def timed(call: Callable[[], None]) -> float:
    """Seconds taken by one call."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_throughput(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Seconds of the raw loop and of :func:`predict_scene` over interleaved rounds.

    Each round times the raw loop, the map alone and the map with its confidence raster.
    Returns the fastest and the median round of each, and the median share of a mapping
    round (map alone) spent in the model's forward passes (measured within the round, so
    other load on the machine hardly moves it).
    """
    height, width = args.scene
    bands = len(args.bands)
    model = unet(args.arch, args.encoder, bands, args.classes)
    timed_model = TimedModel(model)
    # the mapper's scorer: puts the model in the layout it maps in (channels-last on CPU)
    mapper = scorer(timed_model, bands, args.classes, args.bands)
    pixel_sizes = [BAND_RESOLUTION.get(b, 10) for b in args.bands]
    image = write_scene(work / "throughput.tif", height, width, bands, pixel_sizes=pixel_sizes)
    sizes = strip_batches(height, width, args.window, args.overlap, args.batch_size)
    rng = np.random.default_rng(0)
    tensors = {
        n: torch.from_numpy(rng.standard_normal((n, bands, args.window, args.window), "f4"))
        for n in set(sizes)
    }
    if mapper.channels_last:  # the layout predict_scene runs the model in
        tensors = {n: t.contiguous(memory_format=torch.channels_last) for n, t in tensors.items()}

    def raw() -> None:
        with torch.inference_mode():
            for n in sizes:
                model(tensors[n])

    def mapping(confidence: bool, engine: Scorer = mapper) -> None:
        predict_scene(
            engine,
            image,
            work / "throughput_map.tif",
            classes=class_map(args.classes),
            values="codes",
            window=args.window,
            overlap=args.overlap,
            batch_size=args.batch_size,
            threads=args.threads,
            confidence=work / "throughput_confidence.tif" if confidence else None,
            progress=False,
        )

    torch.set_num_threads(args.threads)
    raw()  # warm-up: allocator, oneDNN primitives
    mapping(True)
    seconds: dict[str, list[float]] = {"raw": [], "map": [], "conf": []}
    onnx = onnx_scorer(model, work, args) if args.engine == "onnx" else None
    if onnx is not None:
        mapping(False, onnx)  # warm-up
        seconds["onnx"] = []
    inside = []
    for _ in range(args.rounds):  # interleaved rounds: load on the machine hits all three
        seconds["raw"].append(timed(raw))
        timed_model.seconds = 0.0
        seconds["map"].append(timed(lambda: mapping(False)))
        inside.append(timed_model.seconds / seconds["map"][-1])
        seconds["conf"].append(timed(lambda: mapping(True)))
        if onnx is not None:  # the same windows, mapped by onnxruntime
            seconds["onnx"].append(timed(lambda: mapping(False, onnx)))
    figures = {"inside": statistics.median(inside), "windows": float(sum(sizes))}
    figures["disk"] = image.stat().st_size / (height * width * bands * 4)
    figures["batches"] = float(len(sizes))
    for key, values in seconds.items():
        figures[key], figures[f"{key}_best"] = statistics.median(values), min(values)
    return figures


def onnx_scorer(model: torch.nn.Module, work: Path, args: argparse.Namespace) -> Scorer:
    """``model`` exported to ONNX (as rule export_model does) as a scorer on the CPU."""
    from landcover.models.onnx import OnnxScorer
    from landcover.models.segmentation.export import export_onnx
    from landcover.models.segmentation.nets import save_checkpoint

    bands = len(args.bands)
    meta = {
        "model": {"arch": args.arch, "encoder": args.encoder, "encoder_weights": None},
        "bands": list(args.bands),
        "classes": list(class_map(args.classes).names),
        "in_channels": bands,
        "mean": [0.15] * bands,
        "std": [0.1] * bands,
        "precision": "fp32",
    }
    save_checkpoint(work / "bench.pt", {"state_dict": model.state_dict(), "meta": meta})
    export_onnx(work / "bench.pt", work / "bench.onnx")
    return OnnxScorer(work / "bench.onnx", "cpu", threads=args.threads)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="unet", help="throughput model architecture")
    parser.add_argument("--encoder", default="resnet18", help="throughput model encoder")
    parser.add_argument(
        "--configfile",
        default="config/config.yaml",
        help="the throughput scene's bands are this config's imagery.bands",
    )
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--engine",
        choices=["torch", "onnx"],
        default="torch",
        help="onnx: also map the same windows with the model exported to ONNX (onnxruntime)",
    )
    parser.add_argument(
        "--scene",
        type=int,
        nargs=2,
        default=[1024, 1600],
        metavar=("HEIGHT", "WIDTH"),
        help="throughput scene (px); 1600 px wide = 8 windows, one full batch per strip",
    )
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds of each")
    parser.add_argument("--large", type=int, default=20000, help="large memory scene side")
    parser.add_argument("--small", type=int, default=5000, help="small memory scene side")
    parser.add_argument("--memory-bands", type=int, default=3)
    parser.add_argument(
        "--pixel-scene",
        type=lambda text: tuple(int(v) for v in text.lower().split("x")),
        default=None,
        metavar="HEIGHTxWIDTH",
        help="also map a scene without a CRS of this size, e.g. 13896x81786 (the "
        "planetary scene of issue 13); off by default (1.1 Gpx take long)",
    )
    parser.add_argument("--memory-model", default="conv", help="conv or a U-Net encoder name")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: system tmp)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("IMAGE", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    """Print the throughput ratio and the peak memory of mapping."""
    args = parse_args()
    config = yaml.safe_load(Path(args.configfile).read_text()) or {}
    args.bands = list((config.get("imagery") or {}).get("bands") or DEFAULT_BANDS)
    tuned = tune_malloc()  # as the workflow's mapping does (predict_scene), for both loops
    if args.child:
        child_map(args)
        return
    print(
        f"cpu: {cpu_model()}, threads {args.threads}, torch {torch.__version__}, fp32, "
        f"malloc tuned: {tuned}"
    )
    print(f"window {args.window} px, overlap {args.overlap} px, batch {args.batch_size}")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="map-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            t = measure_throughput(args, work)
            height, width = args.scene
            print(
                f"\nthroughput: model {args.arch}/{args.encoder}, {len(args.bands)} bands, "
                f"{args.classes} classes, scene {height} x {width} px = "
                f"{t['windows']:.0f} windows in {t['batches']:.0f} batches; on disk "
                f"{t['disk']:.0%} of its raw float32 (20 m bands 2 x 2, ZSTD as aligned)"
            )
            raw, mapped, conf = t["raw_best"], t["map_best"], t["conf_best"]
            print(f"raw loop (in-memory tensors):  {t['windows'] / raw:8.2f} windows/s")
            print(
                f"predict_scene (file to COG):   {t['windows'] / mapped:8.2f} windows/s, "
                f"{height * width / mapped / 1e6:.3f} Mpx/s of scene"
            )
            print(f"mapping efficiency:            {raw / mapped:8.3f}  (goal >= 0.9)")
            print(
                f"  fastest of {args.rounds} interleaved rounds (other load only slows a round "
                f"down); ratio of the medians: {t['raw'] / t['map']:.3f}"
            )
            print(
                f"with the confidence raster:    {raw / conf:8.3f}  (ratio of the medians: "
                f"{t['raw'] / t['conf']:.3f}; {t['windows'] / conf:.2f} windows/s)"
            )
            print(
                f"  share of predict_scene spent in the model's forward passes: "
                f"{t['inside']:.3f} (the rest: reading, normalising, blending, writing, COG)"
            )
            if "onnx" in t:
                print(
                    f"onnx engine (onnxruntime):     {t['windows'] / t['onnx_best']:8.2f} "
                    f"windows/s against torch's {t['windows'] / mapped:.2f} (map alone): "
                    f"onnx/torch speed {mapped / t['onnx_best']:.3f} (ratio of the medians: "
                    f"{t['map'] / t['onnx']:.3f}; > 1: onnx faster)"
                )
        if not args.skip_memory:
            print(
                f"\nmemory: fresh process per scene; tiny model '{args.memory_model}' (the "
                f"mapper's memory is measured, not the network's), {args.memory_bands} float32 "
                f"bands, {args.classes} classes"
            )
            peaks = {}
            for side in (args.small, args.large):
                m = measure_memory(args, side, work)
                peaks[side] = m["peak"]
                buffers = strip_memory_bytes(
                    args.classes,
                    args.window,
                    side,
                    *chunk_shape((side, side), args.window, args.overlap, args.batch_size),
                )
                print(
                    f"{side:>6} x {side:<6} px: peak RSS {m['peak'] / 2**20:6.0f} MiB, floor "
                    f"{m['floor'] / 2**20:.0f} MiB (imports, model, one batch), accumulator "
                    f"{buffers / 2**20:.0f} MiB; mapped in {m['seconds']:.0f} s "
                    f"(input {m['input_mb']:.0f} MB on disk, written in {m['written']:.0f} s)"
                )
            large, small = peaks[args.large], peaks[args.small]
            print(f"large peak:                {large / 1e9:6.2f} GB  (goal <= 1.5 GB)")
            print(f"large / small peak:        {large / small:6.3f}  (goal <= 1.2)")
            if args.pixel_scene:
                height, width = args.pixel_scene
                m = measure_memory(args, (height, width), work)
                print(
                    f"{width} x {height} px without a CRS: peak RSS {m['peak'] / 2**20:.0f} MiB "
                    f"({m['peak'] / small:.3f} x the small scene's), mapped in "
                    f"{m['seconds']:.0f} s; the map: CRS {m['map_crs']}, shape "
                    f"{m['map_shape'][1]} x {m['map_shape'][0]}"
                )


if __name__ == "__main__":
    sys.exit(main())
