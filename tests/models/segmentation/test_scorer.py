"""The scorer a segmentation model becomes for mapping (segmentation.scorer).

Its checks of the input and of the checkpoint's meta, its window multiple, precision names.
"""

from __future__ import annotations

import pytest
import torch

from landcover.errors import ConfigError, DataError
from landcover.models.segmentation.scorer import SegmentationScorer, torch_dtype

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


def test_scorer_checks_the_band_count():
    with pytest.raises(DataError, match="image has 2 bands but the model expects 3"):
        scorer(pixel_net())(torch.zeros(1, 2, 8, 8))


def test_scorer_rejects_a_zero_std():
    with pytest.raises(DataError, match="std"):
        SegmentationScorer(
            pixel_net(),
            {"mean": MEAN, "std": [0.1, 0.0, 0.2], "classes": NAMES},
            torch.device("cpu"),
        )


def test_scorer_windows_are_multiples_of_32():
    smp_like = SegmentationScorer(
        pixel_net(),
        {"mean": MEAN, "std": STD, "classes": NAMES, "bands": BANDS},
        torch.device("cpu"),
    )
    assert smp_like.window_multiple == 32


def test_precision_names():
    assert torch_dtype("bf16-mixed") is torch.bfloat16
    assert torch_dtype("16") is torch.float16
    assert torch_dtype(None) is None
    with pytest.raises(ConfigError, match="precision"):
        torch_dtype("int8")
