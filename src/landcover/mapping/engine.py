"""The sliding-window engine: class probabilities of a whole scene, in bounded memory.

The scene is cut into windows of ``window`` px spread evenly from edge to edge, so that
neighbours overlap by at least ``overlap`` px (a few px more on a large scene), and a
scene smaller than one window is padded (reflect) up to it and cropped back. Each
window's class probabilities are weighted by a smooth window (a ``sin²`` ramp over the
overlap, 1 inside, with a small floor) and the weighted sums are normalised, so
neighbouring windows fade into each other and no seam shows.

Memory does not grow with the scene's height, and with its width only through a thin
band of rows: windows are processed one row of windows (a *strip*) at a time, and each
strip one batch of windows at a time, left to right. A :class:`StripAccumulator` holds
the weighted sums of the current batch's columns (``classes x window x batch columns``)
and, across the width, only the rows the next strip shares with this one (``classes x
overlap x width``); after each batch it hands back the block of pixels that no later
window touches (``bench/map_efficiency.py`` measures the peak memory).

The engine takes a *scorer* (:class:`landcover.models.Scorer`): any model kind that maps
a batch of windows ``(batch, bands, h, w)`` float32 reflectance to class probabilities
``(batch, classes, h, w)``. It knows nothing of networks, normalisation or devices.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from tqdm import tqdm

from landcover.errors import ConfigError, DataError
from landcover.models import Scorer

Reader = Callable[[Window], np.ndarray]
"""Reads ``(bands, h, w)`` float32 reflectance (NaN = nodata) for a window inside the scene."""


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Offsets of the windows along one axis.

    As few windows as steps of at most ``window - overlap`` allow, spread evenly from
    0 to ``length - window``: neighbours overlap by at least ``overlap`` px and all by
    about the same. Shifting only the last window inwards instead would make it share
    up to ``window - 1`` rows with its neighbour, and the mapper carries the rows two
    strips share across the scene's whole width (:class:`StripAccumulator`). A scene
    not longer than one window gets a single window at 0 (it is padded when read).

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
    span = length - window
    steps = -(-span // (window - overlap))  # ceil: no step longer than the stride
    return [i * span // steps for i in range(steps + 1)]


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


class StripAccumulator:
    """Weighted probability sums of one strip (row of windows), a column chunk at a time.

    Windows are added strip by strip, left to right. The accumulator holds the sums of
    the current chunk of the strip (``classes x window x span``, ``span`` being the
    columns of one batch of windows) and, across the scene's width, the sums of the
    rows that the next strip shares with this one (``classes x carry x width``, ``carry``
    the rows two strips share: the overlap, or a few rows more). Neither depends on the scene's
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


def chunk_shape(
    shape: tuple[int, int], window: int, overlap: int, batch_size: int
) -> tuple[int, int]:
    """Return ``(span, carry)`` of a scene's :class:`StripAccumulator`.

    ``span`` is the columns of the widest batch of ``batch_size`` windows of a strip,
    ``carry`` the most rows two consecutive strips share (the overlap, or a few rows
    more where the strips are spread to end on the scene's edge: :func:`window_starts`).
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
    scorer: Scorer,
    *,
    window: int,
    overlap: int,
    batch_size: int,
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
        scorer: maps reflectance ``(B, bands, window, window)`` to class probabilities
            ``(B, K, window, window)`` (:class:`landcover.models.Scorer`).
        window: window size (px).
        overlap: overlap of neighbouring windows (px).
        batch_size: windows per batch (within one strip).
        floor: smallest blending weight (see :func:`blend_weights`).
        progress: tqdm bar; ``None`` shows it on a terminal only.

    Yields:
        :class:`Strip` blocks that together cover every pixel exactly once, row by row
        of blocks, each row of blocks left to right.

    """
    height, width = shape
    n_classes = len(scorer.classes)
    if batch_size < 1:
        raise ConfigError(
            f"predict: batch_size={batch_size} is invalid; set `predict: batch_size` >= 1."
        )
    weights = blend_weights(window, overlap, floor)
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
                ok = np.isfinite(pixels).all(axis=0)
                offsets = [c - left for c in group]
                out = scorer(window_batch(pixels, offsets, window, scorer.channels_last))
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
    pixels: np.ndarray, offsets: Sequence[int], window: int, channels_last: bool = False
) -> torch.Tensor:
    """Cut and pad a batch of windows from a block of pixels, in the scorer's memory layout.

    Window ``k`` is ``pixels[:, :, offsets[k] : offsets[k] + window]`` (reflect-padded up
    to ``window`` x ``window`` at the scene's edges). ``pixels`` is left alone.

    Written with torch rather than NumPy: each window is copied straight into the batch
    in the scorer's layout, so there is no copy to reorder it into channels-last.

    Args:
        pixels: ``(bands, h, w)`` float32 reflectance, ``h <= window``.
        offsets: column of each window in ``pixels``.
        window: window size (px).
        channels_last: lay the batch out channels-last.

    Returns:
        float32 tensor ``(len(offsets), bands, window, window)``.

    """
    bands = pixels.shape[0]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    batch = torch.empty((len(offsets), bands, window, window), memory_format=layout)
    for k, c in enumerate(offsets):
        batch[k].copy_(torch.from_numpy(pad_to(pixels[:, :, c : c + window], window, window)))
    return batch


def iter_probability_strips(
    read: Reader,
    shape: tuple[int, int],
    scorer: Scorer,
    *,
    window: int,
    overlap: int,
    batch_size: int,
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
        scorer,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
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


def predict_array(scorer: Scorer, image: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Class probabilities of an in-memory scene ``(bands, H, W)`` -> ``(K, H, W)``.

    A convenience over :func:`iter_probability_strips` for small scenes and tests;
    ``kwargs`` are passed on (``window``, ``overlap``, ``batch_size``...). Nodata pixels keep the
    model's (meaningless) probabilities; :func:`labels_from_probs` masks them.
    """

    def read(win: Window) -> np.ndarray:
        r, c = int(win.row_off), int(win.col_off)
        return image[:, r : r + int(win.height), c : c + int(win.width)]

    strips = list(iter_probability_strips(read, image.shape[1:], scorer, **kwargs))
    return np.concatenate([s.probs for s in strips], axis=1)


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
