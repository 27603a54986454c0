"""The per-pixel scorer: trained trees as the mapping engine's scorer (on the CPU)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landcover.errors import DataError
from landcover.models.pixel.samples import features

log = logging.getLogger(__name__)


class PixelScorer:
    """Boosted trees that score every pixel of a batch of windows from its own bands.

    Attributes:
        bands: band names the model takes, in order.
        classes: class names it predicts, in index order.
        channels_last: False (the engine's layout does not matter to it).
        window_multiple: 1 (any window).
        meta: the artefact's description of itself.
        device: ``"cpu"``, where it runs whatever the job's device.
        per_pixel: True: each pixel is scored from its own bands (test-time augmentation
            would change nothing).

    """

    per_pixel = True
    channels_last = False
    window_multiple = 1
    device = "cpu"

    def __init__(self, booster: Any, meta: dict[str, Any]) -> None:
        """Wrap a LightGBM booster and its description."""
        self.booster = booster
        self.meta = dict(meta)
        self.bands = [str(b) for b in self.meta["bands"]]
        self.classes = [str(c) for c in self.meta["classes"]]

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Probabilities ``(B, K, h, w)`` float32 of reflectance ``(B, bands, h, w)``."""
        b, c, h, w = batch.shape
        if c != len(self.bands):
            raise DataError(
                f"predict: the image has {c} bands but the model expects {len(self.bands)}; "
                "map with the bands the model was trained on."
            )
        pixels = batch.permute(0, 2, 3, 1).reshape(-1, c).numpy()
        probs = self.booster.predict(
            features(pixels, self.bands), num_threads=torch.get_num_threads()
        )
        return np.ascontiguousarray(
            probs.reshape(b, h, w, len(self.classes)).transpose(0, 3, 1, 2), dtype=np.float32
        )


def load(path: str | Path, device: str) -> PixelScorer:
    """Load trees written by :func:`landcover.models.pixel.trainer.train` (safely: no pickle).

    Raises:
        DataError: the file is missing, truncated or not a per-pixel model.

    """
    import lightgbm as lgb

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise DataError(
            f"Cannot read the per-pixel model '{path}' ({type(err).__name__}): delete it and "
            f"rerun train_model. Details: {err}"
        ) from err
    if not isinstance(payload, dict) or "booster" not in payload or "meta" not in payload:
        raise DataError(f"'{path}' is not a per-pixel model (no 'booster'/'meta'); retrain it.")
    if device != "cpu":
        log.warning("model.kind pixel maps on the CPU: the %s job runs it there", device)
    return PixelScorer(lgb.Booster(model_str=payload["booster"]), payload["meta"])
