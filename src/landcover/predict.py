"""Full-scene maps: sliding-window inference with blended overlaps, in bounded memory.

The scene is cut into windows of ``window`` px that overlap by ``overlap`` px; the
last window of a row or column is shifted inwards so that it ends on the scene's
edge, and a scene smaller than one window is padded (reflect) up to it and cropped
back. Each window's class probabilities are weighted by a smooth window (a
``sin²`` ramp over the overlap, 1 inside, with a small floor) and the weighted sums
are normalised, so neighbouring windows fade into each other and no seam shows.

Memory does not grow with the scene's height, and with its width only through a thin
band of rows: windows are processed one row of windows (a *strip*) at a time, and each
strip one batch of windows at a time, left to right. A :class:`StripAccumulator` holds
the weighted sums of the current batch's columns (``classes x window x batch columns``)
and, across the width, only the rows the next strip shares with this one (``classes x
overlap x width``); after each batch it hands back the block of pixels that no later
window touches. The blocks' labels are written a row of tiles at a time
(:class:`TileRowWriter`) into a tiled GeoTIFF, converted to a Cloud-Optimized GeoTIFF at
the end, all with GDAL's block cache bounded (:func:`gdal_env`). A 20000 x 20000 px
scene maps within the 20 % goal of the peak memory of a 5000 x 5000 px one
(``bench/map_efficiency.py``).

The array functions (:func:`window_starts`, :func:`blend_weights`,
:func:`iter_probability_blocks`, :func:`iter_probability_strips`, :func:`predict_array`)
take any ``torch.nn.Module`` that maps ``(batch, bands, h, w)`` to class scores
``(batch, classes, h, w)``; :func:`predict_scene` adds the raster I/O and
:func:`predict_area` the checkpoint.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.windows import Window
from tqdm import tqdm

from landcover import __version__
from landcover.classes import IGNORE, ClassMap
from landcover.errors import ConfigError, DataError
from landcover.hardware import resolve_channels_last, resolve_device
from landcover.io import atomic_path, open_raster
from landcover.runtime import tune_malloc

log = logging.getLogger(__name__)

Values = Literal["codes", "indices"]
"""What the map's pixels hold: the source's codes (first code of each class) or class indices."""

CODES_NODATA = 0
"""Nodata of a map in source codes (WorldCover's nodata)."""

CONFIDENCE_NODATA = 255
"""Nodata of the uint8 confidence raster (values are percent, 0-100)."""

BLOCKSIZE = 256
"""Tile size of the intermediate GeoTIFF and of the COG."""

GDAL_CACHE_MB = 64
"""GDAL's block cache while mapping, MB, unless ``GDAL_CACHEMAX`` is set in the environment.

GDAL's default (5 % of the RAM) lets windowed reads and the COG conversion fill memory
in proportion to the scene; 64 MB holds the blocks of a batch of windows of a 10-band
image (about 40 MB)."""

Reader = Callable[[Window], np.ndarray]
"""Reads ``(bands, h, w)`` float32 reflectance (NaN = nodata) for a window inside the scene."""


# --------------------------------------------------------------------------- pure helpers


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Offsets of the windows along one axis.

    Windows step by ``window - overlap``; the last one is shifted inwards to end on
    the edge (so it may overlap its neighbour by more). A scene not longer than one
    window gets a single window at 0 (it is padded when read).

    Args:
        length: scene size along the axis (px).
        window: window size (px).
        overlap: overlap of neighbouring windows (px), ``0 <= overlap < window``.

    Returns:
        Sorted, unique offsets.

    """
    check_window(window, overlap)
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def check_window(window: int, overlap: int) -> None:
    """Raise ConfigError unless ``window >= 1`` and ``0 <= overlap < window``."""
    if window < 1 or not 0 <= overlap < window:
        raise ConfigError(
            f"predict: window={window}, overlap={overlap} is invalid; set window >= 1 and "
            "0 <= overlap < window (e.g. window: 256, overlap: 64) in the config's `predict`."
        )


def blend_weights(window: int, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """Make the 2-D weight window that blends overlapping predictions.

    Along each axis the weight rises as ``sin²`` over the first ``overlap`` px, stays
    at 1 and falls symmetrically, so two windows overlapping by exactly ``overlap``
    px sum to 1 (a partition of unity). The ``floor`` keeps every pixel's weight
    positive: a scene's edge pixels, seen by one window only, still get a prediction.

    Args:
        window: window size (px).
        overlap: ramp length (px); 0 gives uniform weights.
        floor: smallest weight, in (0, 1].

    Returns:
        float32 array ``(window, window)``.

    """
    check_window(window, overlap)
    i = np.arange(window, dtype=np.float64)
    if overlap > 0:
        ramp = np.sin(np.pi * np.minimum(i + 0.5, overlap) / (2 * overlap)) ** 2
        line = np.minimum(ramp, ramp[::-1])
    else:
        line = np.ones(window)
    return np.maximum(np.outer(line, line), floor).astype(np.float32)


def pad_to(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad the last two axes of ``array`` up to ``(height, width)`` (bottom/right)."""
    dh, dw = height - array.shape[-2], width - array.shape[-1]
    if dh <= 0 and dw <= 0:
        return array
    pad = [(0, 0)] * (array.ndim - 2) + [(0, max(dh, 0)), (0, max(dw, 0))]
    return np.pad(array, pad, mode="reflect" if min(array.shape[-2:]) > 1 else "edge")


def torch_dtype(precision: str | None) -> torch.dtype | None:
    """Return the autocast dtype of a training precision name; ``None`` for full precision.

    Accepts Lightning-style and plain names: ``"bf16"``, ``"bf16-mixed"``,
    ``"bfloat16"``, ``"fp16"``, ``"16"``, ``"16-mixed"``, ``"float16"``, ``"fp32"``,
    ``"32"``, ``"float32"``.
    """
    name = str(precision or "32").lower().replace("-mixed", "").replace("-true", "")
    if name in {"bf16", "bfloat16"}:
        return torch.bfloat16
    if name in {"fp16", "16", "float16", "half"}:
        return torch.float16
    if name in {"fp32", "32", "float32", "full", "tf32"}:
        return None
    raise ConfigError(
        f"predict: unknown precision '{precision}'; use one of bf16, fp16 or fp32 "
        "(the model's checkpoint `precision`)."
    )


def class_values(classes: ClassMap, values: Values) -> tuple[np.ndarray, int]:
    """Return the pixel value of each class and the nodata value of a map.

    Args:
        classes: the class map.
        values: ``"indices"`` (0..K-1, nodata 255) or ``"codes"`` (each class's first
            source code, nodata 0).

    Returns:
        (uint8 array of length K, nodata value).

    """
    if values == "indices":
        return np.arange(len(classes), dtype=np.uint8), IGNORE
    if values == "codes":
        codes = [cs[0] for cs in classes.codes]
        bad = [c for c in codes if not 0 < c < 256]
        if bad:
            raise ConfigError(
                f"predict: class codes {bad} do not fit a uint8 map with nodata 0; set "
                "`predict: values: indices` in the config."
            )
        return np.asarray(codes, dtype=np.uint8), CODES_NODATA
    raise ConfigError(f"predict: values must be 'codes' or 'indices', got '{values}'.")


def colormap(classes: ClassMap, values: Values) -> dict[int, tuple[int, int, int, int]]:
    """Return the map's colour table, keyed by the values written (nodata transparent)."""
    table, nodata = class_values(classes, values)
    by_index = classes.colormap()
    cmap = {int(v): by_index[i] for i, v in enumerate(table)}
    cmap[nodata] = (0, 0, 0, 0)
    return cmap


# --------------------------------------------------------------------------- accumulation


class StripAccumulator:
    """Weighted probability sums of one strip (row of windows), a column chunk at a time.

    Windows are added strip by strip, left to right. The accumulator holds the sums of
    the current chunk of the strip (``classes x window x span``, ``span`` being the
    columns of one batch of windows) and, across the scene's width, the sums of the
    rows that the next strip shares with this one (``classes x carry x width``, ``carry``
    the rows two strips share, usually the overlap). Neither depends on the scene's
    height, and only the carried rows (not the window) grow with its width.

    Use: :meth:`start` a strip, :meth:`add` the windows of a batch, :meth:`finish` the
    columns no later window of the strip touches, and so on to the scene's right edge.

    Attributes:
        top: scene row of the current strip.
        left: scene column of the chunk's first column.
        probs: weighted sums of class probabilities of the chunk.
        weights: sums of weights of the chunk.
        valid: whether the input pixel holds data (all bands finite), in the chunk.
        carry_probs: sums from earlier strips of the rows shared with the next strip.
        carry_weights: the weights of those sums.

    """

    def __init__(
        self,
        n_classes: int,
        window: int,
        width: int,
        height: int,
        span: int | None = None,
        carry: int | None = None,
    ) -> None:
        """Allocate the buffers.

        Args:
            n_classes: number of classes.
            window: window size (px); rows of the chunk.
            width: scene width (px).
            height: scene height (px); only bounds the last strip, not the buffers.
            span: columns of the chunk (the widest batch of windows); the scene's width
                by default.
            carry: most rows two consecutive strips share; ``window`` by default.

        """
        span = width if span is None else min(span, width)
        carry = window if carry is None else min(carry, window)
        self.window, self.width, self.height = window, width, height
        self.top = self.left = self.next = 0
        self.carried = self.carrying = 0
        self.probs = np.zeros((n_classes, window, span), dtype=np.float32)
        self.weights = np.zeros((window, span), dtype=np.float32)
        self.valid = np.zeros((window, span), dtype=bool)
        self.carry_probs = np.zeros((n_classes, carry, width), dtype=np.float32)
        self.carry_weights = np.zeros((carry, width), dtype=np.float32)

    def start(self, row: int, next_row: int) -> None:
        """Begin the strip of windows at scene row ``row``, at the scene's left edge.

        Args:
            row: first row of the strip's windows; the previous strip's ``next_row``.
            next_row: first row of the next strip (the scene's height for the last):
                rows ``[row, next_row)`` are finished by this strip, later ones are
                carried into the next.

        """
        if row != self.next or not row < next_row <= self.height:
            raise ValueError(f"strip rows [{row}, {next_row}) do not follow row {self.next}")
        if self.left not in (0, self.width):
            raise ValueError(f"the strip at row {self.top} is unfinished at column {self.left}")
        carrying = max(0, min(row + self.window, self.height) - next_row)
        if carrying > self.carry_weights.shape[0]:
            raise ValueError(f"strips at rows {row} and {next_row} share more rows than carried")
        self.carried, self.carrying = self.carrying, carrying
        self.top, self.next, self.left = row, next_row, 0

    def add(
        self, probs: np.ndarray, weights: np.ndarray, valid: np.ndarray, row: int, col: int
    ) -> None:
        """Add one window's probabilities ``(K, h, w)`` at scene offset ``(row, col)``."""
        h, w = probs.shape[-2:]
        c = col - self.left
        if row != self.top or h > self.weights.shape[0]:
            raise ValueError(f"window at row {row} lies outside the strip at row {self.top}")
        if c < 0 or c + w > self.weights.shape[1]:
            raise ValueError(f"window at column {col} lies outside the chunk at {self.left}")
        # in place, without a temporary, on all of torch's threads
        sums = torch.from_numpy(self.probs)[:, :h, c : c + w]
        sums.addcmul_(torch.from_numpy(probs), torch.from_numpy(weights))
        self.weights[:h, c : c + w] += weights
        self.valid[:h, c : c + w] = valid

    def finish(self, col: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Hand back the finished part of columns ``[left, col)`` and move the chunk to ``col``.

        The rows carried from earlier strips are added to those columns, the rows shared
        with the next strip are carried, and the strip's own rows are normalised.

        Returns:
            (first scene row, first scene column, normalised probabilities ``(K, n, w)``,
            valid ``(n, w)``).

        """
        a, b = self.left, col - self.left
        span = self.weights.shape[1]
        if not 0 <= b <= span or col > self.width:
            raise ValueError(f"cannot finish columns [{a}, {col}) of a chunk of {span}")
        n, cin, cout = self.next - self.top, self.carried, self.carrying
        probs, weights = self.probs[:, :, :b], self.weights[:, :b]
        probs[:, :cin] += self.carry_probs[:, :cin, a:col]
        weights[:cin] += self.carry_weights[:cin, a:col]
        self.carry_probs[:, :cout, a:col] = probs[:, n : n + cout]
        self.carry_weights[:cout, a:col] = weights[n : n + cout]
        # torch: the same IEEE division as NumPy's, on all of torch's threads
        tiny = np.finfo(np.float32).tiny
        out = torch.from_numpy(probs[:, :n]) / torch.from_numpy(weights[:n]).clamp_min(tiny)
        valid = self.valid[:n, :b].copy()
        # shift the unfinished columns left (NumPy copies overlapping views safely), clear the rest
        keep = span - b
        self.probs[:, :, :keep] = self.probs[:, :, b:]
        self.weights[:, :keep] = self.weights[:, b:]
        self.valid[:, :keep] = self.valid[:, b:]
        torch.from_numpy(self.probs)[:, :, keep:].zero_()
        self.weights[:, keep:] = 0
        self.valid[:, keep:] = False
        self.left = col
        return self.top, a, out.numpy(), valid


@dataclass(frozen=True)
class Strip:
    """Finished pixels of a scene's prediction: whole rows, or a block of columns of them.

    Attributes:
        row: scene row of the first row.
        probs: class probabilities ``(K, h, w)``, float32.
        valid: ``(h, w)``, True where the input holds data.
        col: scene column of the first column (0 for whole rows).

    """

    row: int
    probs: np.ndarray
    valid: np.ndarray
    col: int = 0


def run_model(
    model: torch.nn.Module,
    batch: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Class probabilities (softmax) of a batch ``(B, C, h, w)`` -> ``(B, K, h, w)`` float32.

    The batch comes in the model's memory layout (:func:`window_batch`); with
    channels-last the result is a strided view. On accelerators it runs under autocast
    with ``dtype``; on the CPU in float32.
    """
    x = batch.to(device, non_blocking=True)
    accelerated = device.type != "cpu"
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype, enabled=accelerated and dtype is not None),
    ):
        scores = model(x)
    return torch.softmax(scores.float(), dim=1).cpu().numpy()


def chunk_shape(
    shape: tuple[int, int], window: int, overlap: int, batch_size: int
) -> tuple[int, int]:
    """Return ``(span, carry)`` of a scene's :class:`StripAccumulator`.

    ``span`` is the columns of the widest batch of ``batch_size`` windows of a strip,
    ``carry`` the most rows two consecutive strips share (the overlap, or more where the
    last strip is shifted inwards to end on the scene's edge).
    """
    height, width = shape
    rows = window_starts(height, window, overlap)
    cols = window_starts(width, window, overlap)
    groups = [cols[i : i + batch_size] for i in range(0, len(cols), max(1, batch_size))]
    span = max(min(g[-1] + window, width) - g[0] for g in groups)
    carry = max([min(r + window, height) - n for r, n in itertools.pairwise(rows)], default=0)
    return span, carry


def iter_probability_blocks(
    read: Reader,
    shape: tuple[int, int],
    model: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    n_classes: int,
    window: int = 256,
    overlap: int = 64,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    floor: float = 1e-3,
    progress: bool | None = None,
) -> Iterator[Strip]:
    """Predict a scene window by window and yield its finished blocks in row-major order.

    Each strip of windows is processed in batches of ``batch_size`` windows, left to
    right; after each batch the columns that no later window of the strip touches are
    finished, so a block spans the rows the strip finishes and about one batch of
    windows' columns. Memory depends on the batch, and on the width only through the
    rows that consecutive strips share (see :class:`StripAccumulator`).

    Args:
        read: reads ``(bands, h, w)`` float32 reflectance for a window inside the scene.
        shape: scene (height, width).
        model: maps ``(B, bands, window, window)`` to class scores ``(B, K, window, window)``;
            it is used as given (put it in eval mode and on ``device`` beforehand).
        mean: per-band mean for normalisation.
        std: per-band standard deviation for normalisation.
        n_classes: K, the number of classes the model scores.
        window: window size (px).
        overlap: overlap of neighbouring windows (px).
        batch_size: windows per forward pass (within one strip).
        device: torch device of the model.
        precision: autocast precision on accelerators (see :func:`torch_dtype`).
        floor: smallest blending weight (see :func:`blend_weights`).
        progress: tqdm bar; ``None`` shows it on a terminal only.

    Yields:
        :class:`Strip` blocks that together cover every pixel exactly once, row by row
        of blocks, each row of blocks left to right.

    """
    height, width = shape
    device = torch.device(device)
    dtype = torch_dtype(precision)
    if batch_size < 1:
        raise ConfigError(
            f"predict: batch_size={batch_size} is invalid; set `predict: batch_size` >= 1."
        )
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    if (std_arr <= 0).any() or not np.isfinite(std_arr).all():
        raise DataError(f"predict: the model's band std {list(std)} must be finite and > 0.")
    weights = blend_weights(window, overlap, floor)
    channels_last = resolve_channels_last("auto", device)
    rows = window_starts(height, window, overlap)
    cols = window_starts(width, window, overlap)
    groups = [cols[i : i + batch_size] for i in range(0, len(cols), batch_size)]
    ends = [g[0] for g in groups[1:]] + [width]  # a batch finishes the columns up to here
    acc = StripAccumulator(
        n_classes, window, width, height, *chunk_shape(shape, window, overlap, batch_size)
    )
    bar = tqdm(
        total=len(rows) * len(cols),
        unit="window",
        disable=None if progress is None else not progress,
        file=sys.stderr,
        desc="predict",
    )
    with bar:
        for row, next_row in zip(rows, [*rows[1:], height], strict=True):
            acc.start(row, next_row)
            h = min(window, height - row)
            for group, end in zip(groups, ends, strict=True):
                left = group[0]
                span = min(group[-1] + window, width) - left
                pixels = read(Window(left, row, span, h)).astype(np.float32, copy=False)
                if pixels.shape[0] != len(mean_arr):
                    raise DataError(
                        f"predict: the image has {pixels.shape[0]} bands but the model expects "
                        f"{len(mean_arr)}; map with the bands the model was trained on."
                    )
                ok = np.isfinite(pixels).all(axis=0)
                offsets = [c - left for c in group]
                batch = window_batch(pixels, offsets, window, mean_arr, std_arr, channels_last)
                out = run_model(model, batch, device, dtype)
                if out.shape[1] != n_classes:
                    raise DataError(
                        f"predict: the model scores {out.shape[1]} classes, the config has "
                        f"{n_classes}; use the config the model was trained with."
                    )
                for k, c in enumerate(group):
                    w = min(window, width - c)
                    acc.add(
                        out[k, :, :h, :w],
                        weights[:h, :w],
                        ok[:, c - left : c - left + w],
                        row,
                        c,
                    )
                top, first, probs, valid = acc.finish(end)
                if probs.shape[2]:
                    yield Strip(top, probs, valid, first)
                bar.update(len(group))


def window_batch(
    pixels: np.ndarray,
    offsets: Sequence[int],
    window: int,
    mean: np.ndarray,
    std: np.ndarray,
    channels_last: bool = False,
) -> torch.Tensor:
    """Cut, pad and normalise a batch of windows from a block of pixels, as training does.

    Window ``k`` is ``pixels[:, :, offsets[k] : offsets[k] + window]`` (reflect-padded up
    to ``window`` x ``window`` at the scene's edges). Its values are
    :func:`landcover.data.normalise`'s, bit for bit: ``(x - mean) / std`` in float32,
    non-finite results set to 0. ``pixels`` is left alone.

    Written with torch rather than NumPy: each window is normalised straight into the
    batch in the model's memory layout, so the batch is written once, with no copy
    to reorder it into channels-last, and on all of torch's threads.

    Args:
        pixels: ``(bands, h, w)`` float32 reflectance, ``h <= window``.
        offsets: column of each window in ``pixels``.
        window: window size (px).
        mean: per-band mean, float32.
        std: per-band standard deviation, float32.
        channels_last: lay the batch out channels-last (the model's layout).

    Returns:
        float32 tensor ``(len(offsets), bands, window, window)``.

    """
    bands = pixels.shape[0]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    batch = torch.empty((len(offsets), bands, window, window), memory_format=layout)
    shift = torch.from_numpy(mean).view(bands, 1, 1)
    for k, c in enumerate(offsets):
        piece = pad_to(pixels[:, :, c : c + window], window, window)
        torch.sub(torch.from_numpy(piece), shift, out=batch[k])  # a strided view is fine
    batch.div_(torch.from_numpy(std).view(1, bands, 1, 1))
    return batch.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def iter_probability_strips(
    read: Reader,
    shape: tuple[int, int],
    model: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    n_classes: int,
    window: int = 256,
    overlap: int = 64,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    floor: float = 1e-3,
    progress: bool | None = None,
) -> Iterator[Strip]:
    """Predict a scene window by window and yield its finished rows, top to bottom.

    The blocks of :func:`iter_probability_blocks` (same arguments) joined into whole
    rows: a strip's probabilities are ``(K, rows, width)`` float32, so mapping wide
    scenes is better done with the blocks (as :func:`predict_scene` does).

    Yields:
        :class:`Strip` objects that together cover every row exactly once.

    """
    blocks = iter_probability_blocks(
        read,
        shape,
        model,
        mean,
        std,
        n_classes=n_classes,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        floor=floor,
        progress=progress,
    )
    pending: list[Strip] = []
    for block in blocks:
        if pending and block.row != pending[0].row:
            yield _join(pending)
            pending = []
        pending.append(block)
    if pending:
        yield _join(pending)


def _join(blocks: list[Strip]) -> Strip:
    """Join blocks of the same rows, left to right, into one strip."""
    if len(blocks) == 1:
        return blocks[0]
    return Strip(
        blocks[0].row,
        np.concatenate([b.probs for b in blocks], axis=2),
        np.concatenate([b.valid for b in blocks], axis=1),
        blocks[0].col,
    )


def predict_array(
    model: torch.nn.Module,
    image: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    **kwargs: object,
) -> np.ndarray:
    """Class probabilities of an in-memory scene ``(bands, H, W)`` -> ``(K, H, W)``.

    A convenience over :func:`iter_probability_strips` for small scenes and tests;
    ``kwargs`` are passed on (``n_classes`` is required). Nodata pixels keep the
    model's (meaningless) probabilities; :func:`labels_from_probs` masks them.
    """

    def read(win: Window) -> np.ndarray:
        r, c = int(win.row_off), int(win.col_off)
        return image[:, r : r + int(win.height), c : c + int(win.width)]

    strips = list(iter_probability_strips(read, image.shape[1:], model, mean, std, **kwargs))
    return np.concatenate([s.probs for s in strips], axis=1)


def labels_from_probs(
    probs: np.ndarray,
    valid: np.ndarray,
    table: np.ndarray,
    nodata: int,
    confidence: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map values and confidence of probabilities ``(K, h, w)``.

    Args:
        probs: class probabilities.
        valid: True where the input holds data.
        table: the pixel value of each class (:func:`class_values`).
        nodata: value where the input is nodata.
        confidence: compute the confidence (else ``None`` is returned for it).

    Returns:
        (uint8 map values, uint8 confidence in percent with 255 where nodata, or None).

    """
    # torch.max: the maximum and its first index in one pass, on all of torch's threads
    top, index = torch.from_numpy(np.ascontiguousarray(probs)).max(dim=0)
    values = np.where(valid, table[index.numpy()], np.uint8(nodata)).astype(np.uint8)
    if not confidence:
        return values, None
    conf = np.rint(top.numpy() * 100).astype(np.uint8)
    conf = np.where(valid, conf, np.uint8(CONFIDENCE_NODATA)).astype(np.uint8)
    return values, conf


# --------------------------------------------------------------------------- rasters


def _tiled_profile(src: rasterio.DatasetReader, nodata: int) -> dict[str, object]:
    return {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "width": src.width,
        "height": src.height,
        "crs": src.crs,
        "transform": src.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCKSIZE,
        "blockysize": BLOCKSIZE,
        # the intermediate only (the COG is deflate): written once, read once by to_cog,
        # so the cheapest codec that keeps it small (ZSTD 1 writes ~2x faster than deflate)
        "compress": "zstd",
        "zstd_level": 1,
        "BIGTIFF": "IF_SAFER",
    }


class TileRowWriter:
    """Collect blocks of a one-band uint8 raster and write them a row of tiles at a time.

    Blocks arrive in row-major order (:func:`iter_probability_blocks`); rows are written
    once every tile they touch is complete, so GDAL compresses each tile once instead of
    caching partly written tiles or writing them twice. Holds ``BLOCKSIZE + rows`` rows
    of the scene's width (a few MB for 20000 px).
    """

    def __init__(self, dst: rasterio.io.DatasetWriter, rows: int) -> None:
        """Prepare a buffer for up to ``rows`` rows of finished blocks past a row of tiles.

        Args:
            dst: the open raster (band 1 is written).
            rows: the most rows a block spans (the window).

        """
        self.dst = dst
        self.buffer = np.zeros((BLOCKSIZE + rows, dst.width), dtype=np.uint8)
        self.top = 0  # scene row of the buffer's first row
        self.done = 0  # buffer rows whose every column has arrived

    def add(self, values: np.ndarray, row: int, col: int) -> None:
        """Place a block ``(h, w)`` at scene offset ``(row, col)``; flush finished tiles."""
        h, w = values.shape
        r = row - self.top
        if r != self.done or r + h > self.buffer.shape[0]:
            raise ValueError(f"block at row {row} does not follow row {self.top + self.done}")
        self.buffer[r : r + h, col : col + w] = values
        if col + w == self.dst.width:  # the block ends these rows
            self.done = r + h
            self.flush(self.done // BLOCKSIZE * BLOCKSIZE)

    def flush(self, n: int | None = None) -> None:
        """Write the first ``n`` finished rows (all of them by default)."""
        n = self.done if n is None else n
        if n <= 0:
            return
        self.dst.write(self.buffer[:n], 1, window=Window(0, self.top, self.dst.width, n))
        keep = self.done - n
        self.buffer[:keep] = self.buffer[n : self.done]
        self.top, self.done = self.top + n, keep


def gdal_env(threads: int) -> dict[str, object]:
    """GDAL options while mapping; those set in the environment are left to it.

    ``GDAL_CACHEMAX``: :data:`GDAL_CACHE_MB`; ``GDAL_NUM_THREADS``: ``threads``, so tiles
    are decompressed (reads) and compressed (the COG) on all the rule's threads.
    """
    options = {"GDAL_CACHEMAX": GDAL_CACHE_MB, "GDAL_NUM_THREADS": str(max(1, int(threads)))}
    return {key: value for key, value in options.items() if key not in os.environ}


def to_cog(src: Path, dst: Path, resampling: str = "mode") -> None:
    """Convert a GeoTIFF to a deflate COG with ``resampling`` overviews (tags, colours kept).

    GDAL's COG driver does it in one copy, about twice as fast as rio-cogeo's
    ``cog_translate`` (which writes an intermediate file with overviews and copies it).
    """
    rasterio.shutil.copy(
        str(src),
        str(dst),
        driver="COG",
        COMPRESS="DEFLATE",
        BLOCKSIZE=BLOCKSIZE,
        OVERVIEW_RESAMPLING=resampling.upper(),
        BIGTIFF="IF_SAFER",
    )


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
    model: torch.nn.Module,
    image: str | Path,
    out: str | Path,
    *,
    classes: ClassMap,
    mean: Sequence[float],
    std: Sequence[float],
    bands: Sequence[str] = (),
    values: Values = "codes",
    window: int = 256,
    overlap: int = 64,
    batch_size: int = 8,
    device: str = "cpu",
    precision: str | None = None,
    threads: int = 1,
    confidence: str | Path | None = None,
    tags: Mapping[str, object] | None = None,
    progress: bool | None = None,
) -> None:
    """Map an aligned image with a model and write a Cloud-Optimized GeoTIFF.

    The map is uint8 on the image's grid (CRS, transform, shape), holds class codes or
    indices (``values``), nodata where any band of the input is NaN, the class colour
    table, the class names (tag ``classes``, JSON), the value of each class (tag
    ``class_values``, JSON) and ``tags``. Both rasters are written atomically.

    Args:
        model: the network (eval mode); moved to ``device`` here.
        image: aligned image (float32 reflectance, NaN nodata, band descriptions).
        out: output COG path.
        classes: the class map the model predicts, in index order.
        mean: per-band normalisation mean (the model's bands order).
        std: per-band normalisation std.
        bands: band names the model takes, in order; read from the image by description.
        values: ``"codes"`` (first source code of each class, nodata 0) or ``"indices"``
            (nodata 255).
        window: window size (px).
        overlap: overlap of neighbouring windows (px).
        batch_size: windows per forward pass.
        device: ``cpu``, ``cuda`` (``gpu``) or ``mps``; never silently replaced.
        precision: the training precision, used under autocast on accelerators.
        threads: CPU threads for torch.
        confidence: optional path of a confidence COG (uint8, max probability in %,
            nodata 255).
        tags: extra dataset tags (provenance).
        progress: progress bar (``None``: on a terminal only).

    """
    table, nodata = class_values(classes, values)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        torch.set_num_threads(max(1, int(threads)))
        tune_malloc()
    model = model.to(torch_device).eval()
    if resolve_channels_last("auto", torch_device):
        model = model.to(memory_format=torch.channels_last)
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
    with rasterio.Env(**gdal_env(threads)), open_raster(image, "aligned image") as src:
        indexes = band_indexes(src.descriptions, bands, str(image))

        def read(win: Window) -> np.ndarray:
            return src.read(indexes, window=win, out_dtype="float32")

        with ExitStack() as stack:
            final = stack.enter_context(atomic_path(out))
            work = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(dir=final.parent, prefix=".predict-")
                )
            )
            tmp_map, tmp_conf = work / "map.tif", work / "confidence.tif"
            with ExitStack() as writers:
                dst = writers.enter_context(
                    rasterio.open(tmp_map, "w", **_tiled_profile(src, nodata))
                )
                dst.write_colormap(1, colormap(classes, values))
                dst.set_band_description(1, "class")
                dst.update_tags(**all_tags)
                maps = TileRowWriter(dst, window)
                confs = None
                if confidence:
                    cdst = writers.enter_context(
                        rasterio.open(tmp_conf, "w", **_tiled_profile(src, CONFIDENCE_NODATA))
                    )
                    cdst.set_band_description(1, "confidence (max class probability, %)")
                    cdst.update_tags(**{**all_tags, "units": "percent"})
                    confs = TileRowWriter(cdst, window)
                blocks = iter_probability_blocks(
                    read,
                    (src.height, src.width),
                    model,
                    mean,
                    std,
                    n_classes=len(classes),
                    window=window,
                    overlap=overlap,
                    batch_size=batch_size,
                    device=torch_device,
                    precision=precision,
                    progress=progress,
                )
                for block in blocks:
                    vals, conf = labels_from_probs(
                        block.probs, block.valid, table, nodata, confidence=confs is not None
                    )
                    maps.add(vals, block.row, block.col)
                    if confs is not None and conf is not None:
                        confs.add(conf, block.row, block.col)
                maps.flush()
                if confs is not None:
                    confs.flush()
            to_cog(tmp_map, final, resampling="mode")
            if confidence:
                with atomic_path(confidence) as conf_final:
                    to_cog(tmp_conf, conf_final, resampling="average")
        width, height = src.width, src.height
    log.info("wrote map %s (%d x %d px)", out, width, height)


def predict_area(
    model: str | Path,
    image: str | Path,
    out: str | Path,
    *,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int] = (),
    experiment: str = "",
    device: str = "cpu",
    values: Values = "codes",
    window: int = 256,
    overlap: int = 64,
    batch_size: int = 8,
    threads: int = 1,
    confidence: str | Path | None = None,
) -> None:
    """Map one area with a trained checkpoint (the ``predict_area`` rule).

    Args:
        model: checkpoint (``results/models/{experiment}/{device}/best.pt``).
        image: the area's aligned image.
        out: the map COG (``results/maps/{experiment}/{device}/{area}.tif``).
        classes: the config's ``classes``.
        ignore_codes: the config's ``ignore_codes``.
        experiment: experiment name, for the provenance tags.
        device: the ``{device}`` wildcard: where to run.
        values: ``codes`` or ``indices`` (config ``predict: values``).
        window: window size, px (config ``predict: window``).
        overlap: overlap, px (config ``predict: overlap``).
        batch_size: windows per batch (config ``predict: batch_size``).
        threads: the rule's threads.
        confidence: optional confidence COG path.

    Raises:
        ConfigError: when the checkpoint's classes differ from the config's.

    """
    from landcover.model import OUTPUT_STRIDE, load_model  # the training library

    class_map = ClassMap.from_config(classes, ignore_codes)
    if window % OUTPUT_STRIDE:
        raise ConfigError(
            f"predict: window={window} must be a multiple of {OUTPUT_STRIDE} (the model's "
            "output stride); set e.g. `predict: window: 256` in the config."
        )
    net, meta = load_model(model, device="cpu")
    trained = list(meta.get("classes", class_map.names))
    if trained != list(class_map.names):
        raise ConfigError(
            f"Model '{model}' was trained on classes {trained} but the config's `classes` are "
            f"{list(class_map.names)}; restore the config the model was trained with or retrain."
        )
    predict_scene(
        net,
        image,
        out,
        classes=class_map,
        mean=meta["mean"],
        std=meta["std"],
        bands=list(meta.get("bands", [])),
        values=values,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=meta.get("precision"),
        threads=threads,
        confidence=confidence,
        tags={"model": str(model), "experiment": experiment, "device": device},
    )


def strip_memory_bytes(
    n_classes: int, window: int, width: int, span: int | None = None, carry: int | None = None
) -> int:
    """Bytes held by a :class:`StripAccumulator` (for logs and the benchmark).

    ``span`` and ``carry`` as in :func:`chunk_shape`; by default the scene's width and
    the window (the most they can be).
    """
    span = width if span is None else min(span, width)
    carry = window if carry is None else min(carry, window)
    return n_classes * window * span * 4 + window * span * 5 + (n_classes + 1) * carry * width * 4
