"""Test-time augmentation: the transforms invert, and the scorer averages them."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from landcover.mapping.tta import TRANSFORMS, AugmentedScorer, apply, augmented, undo


class Positional:
    """A scorer that is not rotation-invariant: class 0 grows towards the right edge.

    It overwrites its input, as the segmentation scorer does.
    """

    bands, classes = ["B02", "B03"], ["a", "b"]
    channels_last, window_multiple, device = False, 1, "cpu"
    meta: ClassVar[dict] = {}

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        ramp = torch.linspace(-2, 2, batch.shape[-1])
        logits = torch.stack([batch[:, 0] + ramp, batch[:, 1]], dim=1)
        batch.fill_(float("nan"))
        return torch.softmax(logits, dim=1).numpy()


class PerPixel(Positional):
    per_pixel = True


@pytest.mark.parametrize("code", range(8))
def test_undo_inverts_apply(code):
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    back = undo(apply(x, code).numpy(), code)
    np.testing.assert_array_equal(back, x.numpy())


def test_the_codes_are_the_group_and_its_flips():
    assert TRANSFORMS["d4"] == tuple(range(8)) and len(set(TRANSFORMS["flips"])) == 4
    x = torch.rand(1, 1, 6, 6)
    images = {apply(x, code).numpy().tobytes() for code in TRANSFORMS["d4"]}
    assert len(images) == 8  # eight distinct transforms


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_probabilities_are_the_mean_over_the_transforms(tta):
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.normal(size=(3, 2, 8, 8)).astype(np.float32))
    kept = batch.clone()
    got = AugmentedScorer(Positional(), tta)(batch)
    expected = np.mean([undo(Positional()(apply(kept, c)), c) for c in TRANSFORMS[tta]], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    # differs from the plain scorer: the average cancels its left-right bias
    assert np.abs(got - Positional()(kept.clone())).max() > 0.1
    flat = torch.zeros(1, 2, 8, 8)  # a window without content: only the bias is left
    plain, averaged = Positional()(flat.clone()), AugmentedScorer(Positional(), tta)(flat)
    assert np.abs(plain - plain[..., ::-1]).max() > 0.1  # the plain scorer leans right
    np.testing.assert_allclose(averaged, averaged[..., ::-1], atol=1e-6)  # no longer


def test_none_and_per_pixel_scorers_are_left_alone():
    plain, pixel = Positional(), PerPixel()
    assert augmented(plain, "none") is plain
    assert augmented(pixel, "d4") is pixel
    wrapped = augmented(plain, "d4")
    assert isinstance(wrapped, AugmentedScorer) and wrapped.meta["tta"] == "d4"
    assert wrapped.bands == plain.bands and wrapped.window_multiple == 1


def test_an_ensemble_augments_its_members_not_its_per_pixel_ones():
    class Pair:
        def __init__(self) -> None:
            self.members, self.meta = [Positional(), PerPixel()], {}

    pair = Pair()
    assert augmented(pair, "flips") is pair and pair.meta["tta"] == "flips"
    assert isinstance(pair.members[0], AugmentedScorer)
    assert isinstance(pair.members[1], PerPixel)
