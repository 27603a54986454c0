"""An exported ONNX model as the mapping engine's scorer (``predict.engine: onnx``).

The model is one written by :func:`landcover.models.segmentation.export.export_onnx`:
normalisation and softmax are in its graph, its description in its metadata. It runs
with onnxruntime on the CPU (``CUDAExecutionProvider`` on ``cuda`` where the installed
onnxruntime has it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from landcover.errors import ConfigError, DataError

METADATA_KEY = "landcover"
"""The ``metadata_props`` key of the model's JSON description (as the exporter writes it)."""


def providers(device: str) -> list[str]:
    """Execution providers of onnxruntime for ``device`` (``cpu`` or ``cuda``), never another.

    Raises:
        ConfigError: ``cuda`` where the installed onnxruntime cannot run on it.

    """
    import onnxruntime

    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider"]
    raise ConfigError(
        f"predict.engine: onnx cannot run on '{device}' (onnxruntime has "
        f"{onnxruntime.get_available_providers()}); map on the CPU, install onnxruntime-gpu, "
        "or set `predict: engine: torch`."
    )


class OnnxScorer:
    """An ONNX model as a :class:`~landcover.models.Scorer`: reflectance in, probabilities out.

    Attributes:
        bands: band names the model takes, in order.
        classes: class names it predicts, in index order.
        channels_last: False (onnxruntime takes contiguous NCHW batches).
        window_multiple: window sides must be a multiple of this (the output stride).
        meta: the model's description of itself (its metadata).
        device: ``"cpu"`` or ``"cuda"``.

    """

    channels_last = False

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        """Open the model with onnxruntime on ``device`` with ``threads`` (None: its default).

        Raises:
            DataError: the file is not an ONNX model written by the exporter.

        """
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=providers(device)
            )
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf...)
            raise DataError(
                f"Cannot use ONNX model '{path}' ({type(err).__name__}: {err}); export it "
                "again with `snakemake export_model` (landcover.models.segmentation.export)."
            ) from err
        self.meta = meta
        self.bands = [str(b) for b in meta["bands"]]
        self.classes = [str(c) for c in meta["classes"]]
        self.window_multiple = int(meta["input"]["multiple_of"])
        self.device = str(device).split(":")[0]
        self.input = meta["input"]["name"]

    def __call__(self, batch: Any) -> np.ndarray:
        """Probabilities ``(B, K, h, w)`` float32 of reflectance ``(B, bands, h, w)`` (NaN)."""
        x = np.ascontiguousarray(batch.numpy() if hasattr(batch, "numpy") else batch, np.float32)
        if x.shape[1] != len(self.bands):
            raise DataError(
                f"predict: the image has {x.shape[1]} bands but the model expects "
                f"{len(self.bands)}; map with the bands the model was trained on."
            )
        return self.session.run(None, {self.input: x})[0]


def load(path: str | Path, device: str, threads: int | None = None) -> OnnxScorer:
    """An exported ONNX model as a scorer on ``device``."""
    return OnnxScorer(path, device, threads)
