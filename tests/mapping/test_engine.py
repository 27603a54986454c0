"""The mapping engine (mapping.engine): windows, blending without seams, bounded memory.

Tiny nets (1x1 and 3x3 convolutions, constant scores) stand in for a trained model, so
that every blend can be compared with a single pass or with whole-scene sums.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import landcover.mapping.engine
from landcover.errors import ConfigError, DataError
from landcover.mapping.engine import (
    StripAccumulator,
    blend_weights,
    chunk_shape,
    iter_probability_blocks,
    iter_probability_strips,
    pad_to,
    predict_array,
    window_batch,
    window_starts,
)
from landcover.models.segmentation.data import normalise
from landcover.models.segmentation.scorer import SegmentationScorer

BANDS = ["B02", "B03", "B04"]
NAMES = ["tree", "water", "built_up"]
MEAN = [0.1, 0.2, 0.3]
STD = [0.05, 0.1, 0.2]


def pixel_net(seed: int = 0) -> torch.nn.Module:
    """1x1 convolutions: exactly translation-equivariant, no spatial context."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)
    ).eval()


def conv_net(seed: int = 0) -> torch.nn.Module:
    """3x3 convolutions with zero padding: equivariant away from a window's edges."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1)
    ).eval()


class ConstantNet(torch.nn.Module):
    """The same scores everywhere, whatever the input."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.scores.view(1, -1, 1, 1).expand(b, -1, h, w).clone()


class WindowMeanNet(torch.nn.Module):
    """Scores from each window's band means plus a 1x1 convolution: every window differs."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pixel = torch.nn.Conv2d(3, 3, 1)
        self.mean = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel(x) + 5 * self.mean(x.mean(dim=(2, 3)))[:, :, None, None]


def scorer(
    net: torch.nn.Module, *, classes: list[str] = NAMES, bands: list[str] = BANDS, **meta: object
) -> SegmentationScorer:
    """A little net as the mapping engine's scorer, on the CPU, for windows of any size."""
    wrapped = SegmentationScorer(
        net,
        {"mean": MEAN, "std": STD, "classes": classes, "bands": bands, **meta},
        torch.device("cpu"),
    )
    wrapped.window_multiple = 1  # the tiny nets take any window (smp's need 32)
    return wrapped


def reference_blend(
    model: torch.nn.Module, img: np.ndarray, window: int, overlap: int
) -> np.ndarray:
    """The blend computed naively with whole-scene sums (scenes at least one window large)."""
    _, height, width = img.shape
    weights = blend_weights(window, overlap)
    sums = np.zeros((3, height, width))
    total = np.zeros((height, width))
    for r in window_starts(height, window, overlap):
        for c in window_starts(width, window, overlap):
            probs = single_pass(model, img[:, r : r + window, c : c + window])
            sums[:, r : r + window, c : c + window] += probs * weights
            total[r : r + window, c : c + window] += weights
    return sums / total


def image(height: int, width: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 0.5, (3, height, width)).astype(np.float32)


def single_pass(model: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    x = normalise(img, np.asarray(MEAN, np.float32), np.asarray(STD, np.float32))
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()


# --------------------------------------------------------------------------- windows


def test_window_starts_cover_the_scene_and_end_on_its_edge():
    assert window_starts(100, 32, 8) == [0, 22, 45, 68]  # spread evenly, overlaps 10, 9, 9
    assert window_starts(32, 32, 8) == [0]
    assert window_starts(10, 32, 8) == [0]
    assert window_starts(64, 32, 0) == [0, 32]


@pytest.mark.parametrize("length", [33, 100, 257, 1000, 13896])
@pytest.mark.parametrize(("window", "overlap"), [(32, 8), (256, 64), (256, 0)])
def test_window_starts_overlap_by_at_least_the_overlap(length, window, overlap):
    starts = window_starts(length, window, overlap)
    steps = np.diff(starts)
    assert starts[0] == 0 and starts[-1] == max(0, length - window)
    if len(starts) > 1:
        assert (steps > 0).all() and (steps <= window - overlap).all()
        assert steps.max() - steps.min() <= 1  # spread evenly: all overlaps alike
    # as few windows as the stride allows
    assert len(starts) == 1 + -(-max(0, length - window) // (window - overlap))


def test_rows_carried_between_strips_stay_near_the_overlap():
    """A tall scene's last strip shares about the overlap, not up to a window, with the one
    before: the carried rows span the whole width (issue 13's 81786 px wide scene)."""
    _, carry = chunk_shape((13896, 81786), 256, 64, 8)
    assert 64 <= carry <= 67  # the last window shifted inwards alone shared 248 rows


@pytest.mark.parametrize(("window", "overlap"), [(32, 32), (32, -1), (0, 0)])
def test_bad_window_is_a_config_error(window, overlap):
    with pytest.raises(ConfigError, match="overlap < window"):
        window_starts(100, window, overlap)


def test_blend_weights_are_a_partition_of_unity_over_the_overlap():
    w = blend_weights(32, 8, floor=1e-6)[16]  # one row through the middle
    np.testing.assert_allclose(w[24:] + w[:8], 1.0, atol=1e-6)
    assert w[8:24].min() == pytest.approx(1.0)
    assert blend_weights(32, 8, floor=0.01).min() == pytest.approx(0.01)
    assert np.all(blend_weights(16, 0) == 1)


# --------------------------------------------------------------------------- no seams


@pytest.mark.parametrize(("height", "width"), [(70, 90), (64, 64), (33, 97)])
def test_mosaic_equals_single_pass_for_a_pixelwise_model(height, width):
    model, img = pixel_net(), image(height, width)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=3)
    assert probs.shape == (3, height, width)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_mosaic_of_a_conv_net_has_no_seams():
    """Window edges (zero padding) differ from a single pass; blending hides them."""
    model, img = conv_net(), image(80, 100)
    whole = single_pass(model, img)
    blended = predict_array(scorer(model), img, window=32, overlap=12, batch_size=8)
    error = np.abs(blended - whole)
    assert error.max() < 0.06 and error.mean() < 1e-3
    assert (blended.argmax(0) != whole.argmax(0)).mean() < 1e-3
    # with flat weights (no blending) the window edges show
    flat = predict_array(scorer(model), img, window=32, overlap=12, batch_size=8, floor=1.0)
    assert np.abs(flat - whole).mean() > 10 * error.mean()


@pytest.mark.parametrize(
    ("height", "width", "batch_size"),
    [(70, 90, 3), (58, 41, 1), (58, 200, 2), (32, 33, 8), (100, 64, 4)],
)
def test_blocks_blend_every_window_as_whole_scene_sums_would(height, width, batch_size):
    """Column chunks and carried rows give the naive blend; 58 rows: three strips share rows."""
    model, img = WindowMeanNet(), image(height, width)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=batch_size)
    np.testing.assert_allclose(probs, reference_blend(model, img, 32, 8), atol=1e-5)


def test_scene_smaller_than_one_window_is_padded_and_cropped():
    model, img = pixel_net(), image(13, 20)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=8)
    assert probs.shape == (3, 13, 20)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_single_row_scene():
    model, img = pixel_net(), image(1, 50)
    probs = predict_array(scorer(model), img, window=16, overlap=4, batch_size=8)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_constant_model_gives_a_constant_map():
    img = image(45, 70)
    img[:, :5, :5] = np.nan
    probs = predict_array(
        scorer(ConstantNet([0.0, 2.0, 1.0])), img, window=16, overlap=6, batch_size=8
    )
    expected = torch.softmax(torch.tensor([0.0, 2.0, 1.0]), 0).numpy()
    np.testing.assert_allclose(
        probs, np.broadcast_to(expected[:, None, None], probs.shape), atol=1e-6
    )
    assert (probs.argmax(0) == 1).all()


def test_model_with_wrong_class_count_is_a_data_error():
    with pytest.raises(DataError, match="scores 2 classes"):
        predict_array(
            scorer(ConstantNet([0.0, 1.0])), image(8, 8), window=8, overlap=0, batch_size=8
        )


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("height", [40, 400])
def test_strip_accumulator_does_not_grow_with_the_scene_height(monkeypatch, height):
    made: list[StripAccumulator] = []

    class Recording(StripAccumulator):
        def __init__(self, *args: int) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(landcover.mapping.engine, "StripAccumulator", Recording)
    img = image(height, 48)

    def read(win):
        r, c = int(win.row_off), int(win.col_off)
        assert win.height <= 32  # reads never exceed one strip
        return img[:, r : r + int(win.height), c : c + int(win.width)]

    rows = []
    for strip in iter_probability_strips(
        read,
        img.shape[1:],
        scorer(ConstantNet([0, 1, 0])),
        window=32,
        overlap=8,
        batch_size=8,
    ):
        assert strip.probs.shape[1] <= 32
        rows.extend(range(strip.row, strip.row + strip.probs.shape[1]))
    assert rows == list(range(height))  # every row exactly once, in order
    assert len(made) == 1
    assert made[0].probs.shape == (3, 32, 48)
    assert made[0].weights.shape == (32, 48)


def test_memory_does_not_grow_with_the_scene_width_but_for_the_shared_rows(monkeypatch):
    made: list[StripAccumulator] = []

    class Recording(StripAccumulator):
        def __init__(self, *args: int) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(landcover.mapping.engine, "StripAccumulator", Recording)
    img = image(80, 500)
    reads = []

    def read(win):
        reads.append(win)
        r, c = int(win.row_off), int(win.col_off)
        return img[:, r : r + int(win.height), c : c + int(win.width)]

    covered = np.zeros(img.shape[1:], int)
    blocks = iter_probability_blocks(
        read, img.shape[1:], scorer(pixel_net()), window=32, overlap=8, batch_size=2
    )
    order = []
    for block in blocks:
        h, w = block.probs.shape[1:]
        assert block.valid.shape == (h, w) and w <= 48
        covered[block.row : block.row + h, block.col : block.col + w] += 1
        order.append((block.row, block.col))
    assert (covered == 1).all()  # every pixel exactly once
    assert order == sorted(order)  # row-major
    assert max(int(win.width) for win in reads) == 56  # one batch: 24 + 32 columns
    (acc,) = made
    assert acc.probs.shape == (3, 32, 56)  # the batch's columns, not the width
    assert acc.carry_probs.shape == (3, 8, 500)  # only the overlap rows span the width


class Spy(torch.nn.Module):
    """Records the batches it is given; scores zero everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 3, *x.shape[2:])


@pytest.mark.parametrize("channels_last", [False, True])
def test_windows_are_cut_raw_and_normalised_by_the_scorer_as_in_training(channels_last):
    pixels = image(6, 11)
    pixels[0, 1, 2], pixels[1, 3, 3], pixels[2, 5, 0] = np.nan, np.inf, -np.inf
    before = pixels.copy()
    batch = window_batch(pixels, [0, 3, 6], 8, channels_last)
    assert batch.shape == (3, 3, 8, 8)
    assert batch.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    windows = [pad_to(pixels[:, :, c : c + 8], 8, 8) for c in [0, 3, 6]]
    for k, window in enumerate(windows):  # raw reflectance, padded at the edges
        np.testing.assert_array_equal(batch[k].numpy(), window)
    np.testing.assert_array_equal(pixels, before)  # the read block is left alone
    spy = Spy()
    probs = scorer(spy)(batch)
    assert probs.shape == (3, 3, 8, 8) and probs.dtype == np.float32
    (seen,) = spy.seen
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    for k, window in enumerate(windows):  # bit for bit training's values
        np.testing.assert_array_equal(seen[k].numpy(), normalise(window, mean, std))
    np.testing.assert_array_equal(pixels, before)  # the batch is normalised, not the block


def test_mapping_leaves_the_callers_image_alone():
    img = image(40, 50)
    img[0, 3, 4] = np.nan
    before = img.copy()
    predict_array(scorer(pixel_net()), img, window=16, overlap=4, batch_size=8)
    np.testing.assert_array_equal(img, before)  # batches are normalised in place, not reads


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size"):
        predict_array(scorer(pixel_net()), image(8, 8), window=8, overlap=0, batch_size=0)
