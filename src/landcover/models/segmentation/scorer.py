"""The segmentation scorer: a trained network as the mapping engine's scorer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landcover.errors import ConfigError, DataError
from landcover.hardware import resolve_channels_last, resolve_device
from landcover.models.segmentation.nets import OUTPUT_STRIDE, load_model


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


class SegmentationScorer:
    """A trained smp network as a scorer: normalises a batch, runs it, returns probabilities.

    Attributes:
        bands: band names the model takes, in order.
        classes: class names it predicts, in index order.
        channels_last: the batch layout the network runs fastest in (the engine builds
            batches in it).
        window_multiple: window sides must be a multiple of this (the output stride).
        meta: the checkpoint's description of itself.
        device: where the network runs.

    """

    window_multiple = OUTPUT_STRIDE

    def __init__(self, net: torch.nn.Module, meta: Mapping[str, Any], device: torch.device) -> None:
        """Put the network on ``device`` in eval mode, in its fastest memory layout.

        Raises:
            DataError: the checkpoint's band std is not finite and > 0.

        """
        self.meta = dict(meta)
        self.bands = [str(b) for b in self.meta.get("bands", [])]
        self.classes = [str(c) for c in self.meta["classes"]]
        self.device = device
        self.dtype = torch_dtype(self.meta.get("precision"))
        self.channels_last = resolve_channels_last("auto", device)
        net = net.to(device).eval()
        self.net = net.to(memory_format=torch.channels_last) if self.channels_last else net
        std = np.asarray(self.meta["std"], dtype=np.float32)
        if (std <= 0).any() or not np.isfinite(std).all():
            raise DataError(f"predict: the model's band std {list(std)} must be finite and > 0.")
        self.mean = torch.from_numpy(np.asarray(self.meta["mean"], dtype=np.float32))
        self.std = torch.from_numpy(std)

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Probabilities ``(B, K, h, w)`` float32 of reflectance ``(B, bands, h, w)`` (NaN: nodata).

        Normalised in place as training does (:func:`~landcover.models.segmentation.data.normalise`,
        bit for bit): ``(x - mean) / std`` in float32, non-finite results set to 0.
        """
        bands = batch.shape[1]
        if bands != len(self.mean):
            raise DataError(
                f"predict: the image has {bands} bands but the model expects "
                f"{len(self.mean)}; map with the bands the model was trained on."
            )
        batch.sub_(self.mean.view(1, bands, 1, 1)).div_(self.std.view(1, bands, 1, 1))
        batch.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        return run_model(self.net, batch, self.device, self.dtype)


def load(path: str | Path, device: str) -> SegmentationScorer:
    """Load a checkpoint written by training as a scorer on ``device`` (never silently another)."""
    net, meta = load_model(path, device="cpu")
    return SegmentationScorer(net, meta, resolve_device(device))
