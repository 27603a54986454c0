"""A trained segmentation network as a portable ONNX model (and its STAC MLM description).

:func:`export_onnx` writes one self-contained ``.onnx`` file that maps reflectance to
class probabilities exactly as the workflow does, without this package or torch:

- input ``reflectance``: ``(batch, bands, height, width)`` float32 surface reflectance
  (0-1, NaN = nodata), bands in the order of the metadata's ``bands``; batch, height
  and width are dynamic, height and width a multiple of 32 (the network's output stride);
- the normalisation is in the graph: ``(x - mean) / std`` per band, then every
  non-finite value set to 0 (as :func:`~landcover.models.segmentation.data.normalise`);
- output ``probabilities``: ``(batch, classes, height, width)`` float32, the softmax of
  the network's scores, classes in the order of the metadata's ``classes``.

The model's ``metadata_props`` hold ``landcover``: a JSON description (bands, classes,
mean and std, shapes, opset, the source checkpoint); :class:`landcover.models.onnx.OnnxScorer`
reads it. ONNX opset :data:`OPSET` (onnxruntime >= 1.18).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landcover import __version__
from landcover.errors import ConfigError
from landcover.io import atomic_path
from landcover.models.onnx import METADATA_KEY
from landcover.models.segmentation.nets import OUTPUT_STRIDE, load_checkpoint, load_model

log = logging.getLogger(__name__)

OPSET = 18
"""ONNX opset of the exported graph (torch's dynamo exporter; onnxruntime >= 1.18)."""

INPUT, OUTPUT = "reflectance", "probabilities"
"""Names of the graph's input and output."""


class Portable(nn.Module):
    """Normalisation, network and softmax in one module: reflectance in, probabilities out."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        """Wrap ``net`` with the per-band ``mean`` and ``std`` of its training data."""
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, K, h, w)`` of reflectance ``(B, bands, h, w)`` (NaN: nodata)."""
        x = (x - self.mean) / self.std
        x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        return torch.softmax(self.net(x), dim=1)


def describe(meta: Mapping[str, Any], checkpoint: str | Path, opset: int) -> dict[str, Any]:
    """The JSON description stored in the ONNX file (and read by the ONNX scorer)."""
    bands = [str(b) for b in meta.get("bands", [])]
    classes = [str(c) for c in meta["classes"]]
    return {
        "input": {
            "name": INPUT,
            "shape": ["batch", len(bands), "height", "width"],
            "dtype": "float32",
            "units": "surface reflectance (0-1), NaN = nodata",
            "multiple_of": OUTPUT_STRIDE,
        },
        "output": {
            "name": OUTPUT,
            "shape": ["batch", len(classes), "height", "width"],
            "dtype": "float32",
            "units": "class probability (softmax)",
        },
        "bands": bands,
        "classes": classes,
        "mean": [float(v) for v in meta["mean"]],
        "std": [float(v) for v in meta["std"]],
        "normalisation": "in the graph: (x - mean) / std per band, non-finite -> 0",
        "opset": opset,
        "model": dict(meta.get("model", {})),
        "patch_size": meta.get("patch_size"),
        "epoch": meta.get("epoch"),
        "val_miou": meta.get("val_miou"),
        "checkpoint": str(checkpoint),
        "software": f"landcover {__version__}",
    }


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET) -> dict[str, Any]:
    """Export a segmentation checkpoint to a self-contained ONNX file (written atomically).

    Args:
        checkpoint: a ``best.pt`` or ``last.pt`` written by ``train_model``.
        out: the ``.onnx`` path.
        opset: the ONNX opset.

    Returns:
        The description stored in the file's metadata (:func:`describe`).

    """
    import onnx

    net, meta = load_model(checkpoint, device="cpu")
    description = describe(meta, checkpoint, opset)
    module = Portable(net, description["mean"], description["std"]).eval()
    side = 2 * OUTPUT_STRIDE
    example = torch.zeros(1, len(description["mean"]), side, side)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    notes = io.StringIO()  # the exporter prints its steps: to the debug log
    with warnings.catch_warnings(), contextlib.redirect_stdout(notes):
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: dynamic, OUTPUT: dynamic},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    log.debug("torch.onnx.export: %s", notes.getvalue())
    proto = program.model_proto
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(description))
    proto.doc_string = (
        f"landcover segmentation model from {checkpoint} (see metadata '{METADATA_KEY}')"
    )
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))  # one file: weights inside (models < 2 GB)
    log.info("exported %s to %s (opset %d)", checkpoint, out, opset)
    return description


# the version whose models the extension's own package (stac-model) validates in the tests
MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.6.0/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"


def mlm_item(
    description: Mapping[str, Any],
    classes: Sequence[Mapping[str, Any]],
    *,
    item_id: str,
    model_href: str,
    licence: str,
) -> dict[str, Any]:
    """A STAC item with the Machine Learning Model (MLM 1.6) extension describing an export.

    Args:
        description: the export's description (:func:`export_onnx`).
        classes: the config's ``classes`` (``name``, ``codes``, ``colour``), in index order.
        item_id: the item's id.
        model_href: the ONNX file, relative to the item.
        licence: SPDX id or ``other`` of the weights (``export.licence``).

    """
    model = description["model"]
    bands, names = description["bands"], description["classes"]
    dims = ["batch", "channel", "height", "width"]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [MLM_SCHEMA, CLASSIFICATION_SCHEMA],
        "id": item_id,
        "geometry": None,
        "properties": {
            "datetime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # exported
            "license": licence,
            "description": (
                "Land-cover segmentation network of the landcover workflow, exported to ONNX. "
                "Input: surface reflectance (0-1, NaN nodata) of the bands in order; the "
                f"per-band normalisation is inside the graph. {description['normalisation']}."
            ),
            "mlm:name": item_id,
            "mlm:architecture": f"{model.get('arch')} ({model.get('encoder')} encoder)",
            "mlm:tasks": ["semantic-segmentation"],
            "mlm:framework": "pytorch",
            "mlm:framework_version": torch.__version__.split("+")[0],
            "mlm:accelerator": None,
            "mlm:pretrained": model.get("encoder_weights") is not None,
            "mlm:pretrained_source": model.get("encoder_weights"),
            "mlm:input": [
                {
                    "name": INPUT,
                    "bands": bands,
                    "input": {
                        "shape": [-1, len(bands), -1, -1],
                        "dim_order": dims,
                        "data_type": "float32",
                    },
                    "description": (
                        f"Surface reflectance (0-1), NaN = nodata; height and width a multiple "
                        f"of {description['input']['multiple_of']}."
                    ),
                    "value_scaling": None,  # in the graph (landcover:normalisation)
                    "resize_type": None,
                    "pre_processing_function": None,
                }
            ],
            "mlm:output": [
                {
                    "name": OUTPUT,
                    "tasks": ["semantic-segmentation"],
                    "result": {
                        "shape": [-1, len(names), -1, -1],
                        "dim_order": dims,
                        "data_type": "float32",
                    },
                    "description": "Class probabilities (softmax); the map is their argmax.",
                    "classification:classes": [
                        {
                            "value": index,
                            "name": name,
                            "description": f"source codes {list(spec.get('codes', []))}",
                            "color_hint": str(spec.get("colour", "")).lstrip("#").upper(),
                        }
                        for index, (name, spec) in enumerate(zip(names, classes, strict=True))
                    ],
                    "post_processing_function": None,
                }
            ],
            "landcover:normalisation": {
                "in_graph": True,
                "formula": "(x - mean) / std per band; non-finite -> 0",
                "mean": description["mean"],
                "std": description["std"],
            },
            "landcover:opset": description["opset"],
            "landcover:epoch": description.get("epoch"),
            "landcover:val_miou": description.get("val_miou"),
        },
        "links": [],
        "assets": {
            "model": {
                "href": model_href,
                "type": "application/octet-stream; application=onnx",
                "title": f"{item_id} (ONNX opset {description['opset']})",
                "roles": ["mlm:model", "mlm:weights", "data"],
                "mlm:artifact_type": "onnx",
            }
        },
    }


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    item: str | Path,
    classes: Sequence[Mapping[str, Any]],
    *,
    item_id: str,
    licence: str,
) -> None:
    """Export a checkpoint to ONNX and describe it in a STAC MLM item (rule export_model).

    Raises:
        ConfigError: the config's classes differ from the checkpoint's.

    """
    trained = [str(c) for c in load_checkpoint(checkpoint)["meta"]["classes"]]
    names = [str(c["name"]) for c in classes]
    if names != trained:
        raise ConfigError(
            f"Model '{checkpoint}' was trained on classes {trained} but the config's "
            f"`classes` are {names}; restore the config the model was trained with."
        )
    description = export_onnx(checkpoint, out)
    href = Path(out).name if Path(out).parent == Path(item).parent else str(Path(out).resolve())
    document = mlm_item(description, classes, item_id=item_id, model_href=href, licence=licence)
    with atomic_path(item) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
