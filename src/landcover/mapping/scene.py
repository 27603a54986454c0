"""Mapping a scene: an aligned image and a trained model in, a map COG (and confidence) out.

:func:`predict_scene` adds the raster I/O to the engine (:mod:`.engine`) and the writer
(:mod:`.writer`); :func:`predict_area` loads the model of any kind through the registry
(:func:`landcover.models.load`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.windows import Window

from landcover import __version__
from landcover.classes import ClassMap
from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path, gdal_env, open_raster, to_cog
from landcover.mapping.chips import chip_window
from landcover.mapping.engine import Strip, iter_probability_blocks
from landcover.mapping.legend import legend_paths, write_legend
from landcover.mapping.tta import augmented
from landcover.mapping.writer import (
    CONFIDENCE_NODATA,
    TileRowWriter,
    Values,
    class_values,
    colormap,
    labels_from_probs,
    probabilities_percent,
    tiled_profile,
)
from landcover.models import Scorer, load
from landcover.models.onnx import OnnxScorer
from landcover.runtime import tune_malloc

log = logging.getLogger(__name__)


def band_indexes(descriptions: Sequence[str | None], bands: Sequence[str], image: str) -> list[int]:
    """1-based indexes of ``bands`` in an image whose band descriptions are ``descriptions``.

    Falls back to the file's band order when it has no descriptions and as many bands.

    Raises:
        DataError: when a band the model needs is not in the image.

    """
    if not bands:
        return list(range(1, len(descriptions) + 1))
    names = list(descriptions)
    if all(d is None for d in names) and len(names) == len(bands):
        return list(range(1, len(names) + 1))
    missing = [b for b in bands if b not in names]
    if missing:
        raise DataError(
            f"Aligned image '{image}' lacks band(s) {missing} the model was trained on "
            f"(image has {names}); add them to `imagery: bands` and rerun, or retrain."
        )
    return [names.index(b) + 1 for b in bands]


def predict_scene(
    scorer: Scorer,
    image: str | Path,
    out: str | Path,
    *,
    classes: ClassMap,
    values: Values,
    window: int,
    overlap: int,
    batch_size: int,
    threads: int = 1,
    confidence: str | Path | None = None,
    probabilities: str | Path | None = None,
    tags: Mapping[str, object] | None = None,
    progress: bool | None = None,
) -> None:
    """Map an aligned image with a scorer and write a Cloud-Optimized GeoTIFF.

    The map is uint8 on the image's grid (CRS, transform, shape), holds class codes or
    indices (``values``), nodata where any band of the input is NaN, the class colour
    table, the class names (tag ``classes``, JSON), the value of each class (tag
    ``class_values``, JSON) and ``tags``. Both rasters are written atomically.

    Args:
        scorer: the trained model (:func:`landcover.models.load`); its bands are read from
            the image by description.
        image: aligned image (float32 reflectance, NaN nodata, band descriptions).
        out: output COG path.
        classes: the class map the model predicts, in index order.
        values: ``"codes"`` (first source code of each class, nodata 0) or ``"indices"``
            (nodata 255).
        window: window size (px).
        overlap: overlap of neighbouring windows (px).
        batch_size: windows per batch.
        threads: GDAL threads (decoding the image, compressing the COG).
        confidence: optional path of a confidence COG (uint8, max probability in %,
            nodata 255).
        probabilities: optional path of a probability COG: one band per class (in class
            order, described by its name), uint8 percent, nodata 255.
        tags: extra dataset tags (provenance).
        progress: progress bar (``None``: on a terminal only).

    Raises:
        ConfigError: a window that is not a multiple of what the scorer needs.

    """
    with rasterio.Env(**gdal_env(threads)), open_raster(image, "aligned image") as src:
        window, overlap = chip_window(src.tags(), window, overlap, scorer.window_multiple)
        if getattr(scorer, "per_pixel", False):  # no context, no seam: overlap only costs
            overlap = 0
        if window % scorer.window_multiple:
            raise ConfigError(
                f"predict: window={window} must be a multiple of {scorer.window_multiple} "
                "(the model's output stride); set e.g. `predict: window: 256` in the config."
            )
        table, _ = class_values(classes, values)
        all_tags = {
            "classes": json.dumps(list(classes.names)),
            "class_values": json.dumps([int(v) for v in table]),
            "values": values,
            "image": str(image),
            "window": str(window),
            "overlap": str(overlap),
            "software": f"landcover {__version__}",
            **{k: str(v) for k, v in (tags or {}).items()},
        }
        indexes = band_indexes(src.descriptions, scorer.bands, str(image))

        def read(win: Window) -> np.ndarray:
            return src.read(indexes, window=win, out_dtype="float32")

        blocks = iter_probability_blocks(
            read,
            (src.height, src.width),
            scorer,
            window=window,
            overlap=overlap,
            batch_size=batch_size,
            progress=progress,
        )
        outputs = {"map": out, "confidence": confidence, "probabilities": probabilities}
        _write_maps(src, blocks, outputs, classes, values, all_tags, window)
        width, height = src.width, src.height
    log.info("wrote map %s (%d x %d px)", out, width, height)


def _write_maps(
    src: rasterio.DatasetReader,
    blocks: Iterator[Strip],
    outputs: Mapping[str, str | Path | None],
    classes: ClassMap,
    values: Values,
    tags: Mapping[str, str],
    window: int,
) -> None:
    """Write the blocks into tiled GeoTIFFs, then into COGs, each atomically.

    ``outputs``: ``map`` (the class map), and ``confidence`` and ``probabilities`` when
    not None (the winning class's probability; every class's, one band each), in percent.
    The map's class names go beside it (:func:`~landcover.mapping.legend.write_legend`:
    ``.tif.aux.xml`` for GDAL, ``.qml`` for QGIS) before it is moved into place.
    """
    table, nodata = class_values(classes, values)
    names = list(classes.names)
    layers = {  # name -> (nodata, band descriptions, overview resampling)
        "map": (nodata, ["class"], "mode"),
        "confidence": (CONFIDENCE_NODATA, ["confidence (max class probability, %)"], "average"),
        "probabilities": (CONFIDENCE_NODATA, names, "average"),  # QGIS shows the names
    }
    wanted = [name for name in layers if outputs.get(name)]
    try:
        with ExitStack() as stack:
            finals = {name: stack.enter_context(atomic_path(outputs[name])) for name in wanted}
            work = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(dir=finals["map"].parent, prefix=".predict-")
                )
            )
            layouts = {name: layers[name][:2] for name in wanted}
            _write_tiled(src, blocks, work, layouts, classes, values, tags, window)
            for name in wanted:  # the map last: its presence says the others are complete
                if name != "map":
                    to_cog(work / f"{name}.tif", finals[name], resampling=layers[name][2])
            rgba = classes.colormap()  # by class index
            write_legend(outputs["map"], table, names, [rgba[i] for i in range(len(names))])
            to_cog(work / "map.tif", finals["map"], resampling="mode")
    except BaseException:  # no class names beside a map that is not there
        for sidecar in legend_paths(outputs["map"]):
            sidecar.unlink(missing_ok=True)
        raise


def _write_tiled(
    src: rasterio.DatasetReader,
    blocks: Iterator[Strip],
    work: Path,
    layouts: Mapping[str, tuple[int, list[str]]],
    classes: ClassMap,
    values: Values,
    tags: Mapping[str, str],
    window: int,
) -> None:
    """Write the blocks into tiled GeoTIFFs ``work/{name}.tif`` (``layouts``: nodata, bands)."""
    table, nodata = class_values(classes, values)
    with ExitStack() as files:
        writers = {}
        for name, (layer_nodata, descriptions) in layouts.items():
            profile = tiled_profile(src, layer_nodata, len(descriptions))
            dst = files.enter_context(rasterio.open(work / f"{name}.tif", "w", **profile))
            if name == "map":
                dst.write_colormap(1, colormap(classes, values))
            for band, description in enumerate(descriptions, start=1):
                dst.set_band_description(band, description)
            dst.update_tags(**tags, **({} if name == "map" else {"units": "percent"}))
            writers[name] = TileRowWriter(dst, window)
        for block in blocks:
            vals, conf = labels_from_probs(
                block.probs, block.valid, table, nodata, confidence="confidence" in writers
            )
            writers["map"].add(vals, block.row, block.col)
            if conf is not None:
                writers["confidence"].add(conf, block.row, block.col)
            if "probabilities" in writers:
                percent = probabilities_percent(block.probs, block.valid)
                writers["probabilities"].add(percent, block.row, block.col)
        for writer in writers.values():
            writer.flush()


def load_scorer(
    kind: str,
    model: str | Path,
    device: str,
    engine: str,
    threads: int,
    onnx: str | Path | None = None,
) -> Scorer:
    """The scorer of a trained model; with ``engine="onnx"`` a network runs in onnxruntime.

    The ONNX engine maps with :class:`~landcover.models.onnx.OnnxScorer` on ``onnx``
    (rule export_model's file); without one it exports the checkpoint to a temporary
    file first (:func:`~landcover.models.segmentation.export.export_onnx`). Other kinds
    keep their own scorer.
    """
    if engine != "onnx" or kind != "segmentation":
        if engine == "onnx":
            log.info(
                "predict.engine: onnx applies to segmentation networks; %s keeps its own", kind
            )
        return load(kind, model, device)
    if onnx is not None:
        return OnnxScorer(onnx, device, threads)
    from landcover.models.segmentation.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="landcover-onnx-") as tmp:
        export_onnx(model, Path(tmp) / "model.onnx")
        return OnnxScorer(Path(tmp) / "model.onnx", device, threads)  # read into memory


def predict_area(
    model: str | Path,
    image: str | Path,
    out: str | Path,
    *,
    kind: str,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int],
    experiment: str,
    device: str,
    settings: Mapping[str, Any],
    threads: int,
    confidence: str | Path | None = None,
    probabilities: str | Path | None = None,
    onnx: str | Path | None = None,
) -> None:
    """Map one area with a trained model of any kind (the ``predict_area`` rule).

    Args:
        model: the trained artefact (``results/models/{experiment}/{device}/best.pt``).
        image: the area's aligned image.
        out: the map COG (``results/maps/{experiment}/{device}/{area}.tif``).
        kind: the experiment's ``model.kind``.
        classes: the config's ``classes``.
        ignore_codes: the config's ``ignore_codes``.
        experiment: experiment name, for the provenance tags.
        device: the ``{device}`` wildcard: where to run.
        settings: the config's validated ``predict`` section (``values``, ``window``,
            ``overlap``, ``batch_size``, ``tta``, ``engine``).
        threads: the rule's threads.
        confidence: optional confidence COG path.
        probabilities: optional per-class probability COG path.
        onnx: the network exported from ``model`` (rule export_model), mapped with
            ``engine: onnx``; None: exported inside the job.

    Raises:
        ConfigError: when the model's classes differ from the config's.

    """
    class_map = ClassMap.from_config(classes, ignore_codes)
    scorer = load_scorer(kind, model, device, settings["engine"], threads, onnx)
    if torch.device(scorer.device).type == "cpu":  # also a CPU kind in a cuda job
        torch.set_num_threads(max(1, int(threads)))
        tune_malloc()
    if list(scorer.classes) != list(class_map.names):
        raise ConfigError(
            f"Model '{model}' was trained on classes {list(scorer.classes)} but the config's "
            f"`classes` are {list(class_map.names)}; restore the config the model was trained "
            "with or retrain."
        )
    predict_scene(
        augmented(scorer, settings["tta"]),
        image,
        out,
        classes=class_map,
        values=settings["values"],
        window=settings["window"],
        overlap=settings["overlap"],
        batch_size=settings["batch_size"],
        threads=threads,
        confidence=confidence,
        probabilities=probabilities,
        # where it ran, which may differ from the job's device (the pixel kind runs on the CPU)
        tags={
            "model": str(model),
            "experiment": experiment,
            "device": torch.device(scorer.device).type,
            "tta": settings["tta"],
            "engine": "onnx" if isinstance(scorer, OnnxScorer) else "torch",
        },
    )
