"""A segmentation checkpoint exported to ONNX (segmentation.export) and mapped with onnxruntime.

A real (random) smp U-Net: the ONNX scorer's probabilities match torch's within 1e-4, and
maps agree except where the top two classes are within 1e-4.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import torch
from affine import Affine

from landcover.config import validated
from landcover.errors import ConfigError, DataError
from landcover.mapping.engine import iter_probability_blocks
from landcover.mapping.scene import predict_area
from landcover.models import load
from landcover.models.onnx import OnnxScorer
from landcover.models.segmentation.export import (
    INPUT,
    OPSET,
    OUTPUT,
    export_model,
    export_onnx,
)
from landcover.models.segmentation.nets import build_model, save_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

BANDS = ["B02", "B03", "B04"]
NAMES = ["tree", "water", "built_up"]
CLASSES = [
    {"name": "tree", "codes": [10], "colour": "#006400"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
    {"name": "built_up", "codes": [50, 51], "colour": "#FA0000"},
]
TOLERANCE = 1e-4


@pytest.fixture
def torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random U-Net (resnet18) checkpoint as training writes it, and its ONNX export."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    net = build_model("unet", "resnet18", None, len(BANDS), len(NAMES))
    meta = {
        "model": {"arch": "unet", "encoder": "resnet18", "encoder_weights": None},
        "bands": BANDS,
        "classes": NAMES,
        "in_channels": len(BANDS),
        "patch_size": 64,
        "mean": [0.1, 0.2, 0.3],
        "std": [0.05, 0.1, 0.2],
        "precision": "fp32",
    }
    ckpt = folder / "best.pt"
    save_checkpoint(ckpt, {"state_dict": net.state_dict(), "meta": meta})
    out = folder / "model.onnx"
    export_onnx(ckpt, out)
    return ckpt, out


def reflectance(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    img = np.random.default_rng(seed).uniform(0, 0.5, shape).astype(np.float32)
    img[..., :3, :5] = np.nan  # nodata
    return img


def test_the_export_describes_itself(exported):
    import onnx

    ckpt, out = exported
    model = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["landcover"])
    assert meta["bands"] == BANDS and meta["classes"] == NAMES
    assert meta["mean"] == pytest.approx([0.1, 0.2, 0.3]) and meta["opset"] == OPSET
    assert meta["input"]["name"] == INPUT and meta["output"]["name"] == OUTPUT
    assert meta["input"]["multiple_of"] == 32 and meta["checkpoint"] == str(ckpt)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == OPSET
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))
    assert not list(out.parent.glob("*.data"))  # one self-contained file


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 128)])  # dynamic batch, h, w
def test_onnx_probabilities_match_torch(exported, shape):
    ckpt, out = exported
    batch = reflectance(shape)
    reference = load("segmentation", ckpt, "cpu")(torch.from_numpy(batch.copy()))
    onnx_scorer = OnnxScorer(out, "cpu", threads=1)
    assert onnx_scorer.bands == BANDS and onnx_scorer.classes == NAMES
    assert onnx_scorer.window_multiple == 32 and not onnx_scorer.channels_last
    probs = onnx_scorer(torch.from_numpy(batch))
    assert probs.shape == (shape[0], 3, *shape[2:]) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, reference, atol=TOLERANCE, rtol=0)


def test_a_file_that_is_not_an_export_is_a_data_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="export_model"):
        OnnxScorer(bad)


def write_image(path: Path, img: np.ndarray) -> Path:
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": img.shape[0],
        "height": img.shape[1],
        "width": img.shape[2],
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 1600020),
        "nodata": float("nan"),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        for band, name in enumerate(BANDS, start=1):
            dst.set_band_description(band, name)
    return path


def top_two_margin(scorer: object, img: np.ndarray, window: int, overlap: int) -> np.ndarray:
    """The gap between the two most probable classes of each pixel of the blended scene."""
    margin = np.zeros(img.shape[1:], np.float32)
    for block in iter_probability_blocks(
        lambda w: img[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width].copy(),
        img.shape[1:],
        scorer,
        window=window,
        overlap=overlap,
        batch_size=2,
        progress=False,
    ):
        top = np.sort(block.probs, axis=0)
        h, w = top.shape[1:]
        margin[block.row : block.row + h, block.col : block.col + w] = top[-1] - top[-2]
    return margin


def test_onnx_and_torch_maps_agree(exported, tmp_path, torch_threads):
    ckpt, onnx = exported
    img = reflectance((3, 100, 90))
    src = write_image(tmp_path / "image.tif", img)
    config = validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})
    maps = {}
    # "onnx": exported inside the job; "file": export_model's file, as the rule passes it
    for engine, given in (("torch", None), ("onnx", None), ("file", onnx)):
        out = tmp_path / f"{engine}.tif"
        settings = {**config["predict"], "window": 64, "overlap": 16}
        settings["engine"] = "torch" if engine == "torch" else "onnx"
        predict_area(
            ckpt,
            src,
            out,
            kind="segmentation",
            classes=CLASSES,
            ignore_codes=[],
            experiment="e",
            device="cpu",
            settings={**settings, "confidence": False},
            threads=1,
            onnx=given,
        )
        with rasterio.open(out) as ds:
            maps[engine] = ds.read(1)
            assert ds.tags()["engine"] == settings["engine"]
    np.testing.assert_array_equal(maps["onnx"], maps["file"])
    margin = top_two_margin(load("segmentation", ckpt, "cpu"), img, 64, 16)
    differ = maps["torch"] != maps["onnx"]
    assert not (differ & (margin > TOLERANCE)).any()
    assert (maps["torch"] == 0).sum() == 15  # the nodata corner, in both


def test_export_model_writes_an_mlm_item(exported, tmp_path):
    ckpt, _ = exported
    out, item = tmp_path / "model.onnx", tmp_path / "mlm.json"
    export_model(ckpt, out, item, CLASSES, item_id="landcover-unet-cpu", licence="CC-BY-4.0")
    doc = json.loads(item.read_text())
    assert "https://stac-extensions.github.io/mlm/v1.6.0/schema.json" in doc["stac_extensions"]
    props = doc["properties"]
    assert props["license"] == "CC-BY-4.0" and props["mlm:tasks"] == ["semantic-segmentation"]
    pystac.Item.from_dict(doc)  # a STAC item
    (source,) = props["mlm:input"]
    assert source["name"] == INPUT and source["bands"] == BANDS
    assert source["input"]["shape"] == [-1, 3, -1, -1]
    assert props["landcover:normalisation"]["in_graph"] is True
    assert props["landcover:normalisation"]["std"] == pytest.approx([0.05, 0.1, 0.2])
    (result,) = props["mlm:output"]
    assert result["result"]["shape"] == [-1, 3, -1, -1]
    assert [(c["value"], c["name"], c["color_hint"]) for c in result["classification:classes"]] == [
        (0, "tree", "006400"),
        (1, "water", "0064C8"),
        (2, "built_up", "FA0000"),
    ]
    asset = doc["assets"]["model"]
    assert asset["href"] == "model.onnx" and "mlm:model" in asset["roles"]
    assert OnnxScorer(out).classes == NAMES


def test_mlm_item_is_valid_for_the_extensions_own_models(exported, tmp_path):
    schema = pytest.importorskip("stac_model.schema")
    ckpt, _ = exported
    item = tmp_path / "mlm.json"
    export_model(ckpt, tmp_path / "model.onnx", item, CLASSES, item_id="m", licence="MIT")
    props = json.loads(item.read_text())["properties"]
    model = schema.MLModelProperties.model_validate(props)
    assert model.name == "m" and [i.name for i in model.input] == [INPUT]
    assert [c.name for c in model.output[0].classes] == NAMES
    assert schema.SCHEMA_URI in json.loads(item.read_text())["stac_extensions"]
    # what the extension requires is checked: an item without inputs is refused
    with pytest.raises(ValueError, match="input"):
        schema.MLModelProperties.model_validate(
            {k: v for k, v in props.items() if k != "mlm:input"}
        )


def test_export_model_checks_the_classes(exported, tmp_path):
    ckpt, _ = exported
    renamed = [{**CLASSES[0], "name": "forest"}, *CLASSES[1:]]
    with pytest.raises(ConfigError, match="trained on classes"):
        export_model(
            ckpt, tmp_path / "m.onnx", tmp_path / "mlm.json", renamed, item_id="x", licence="MIT"
        )
    assert not list(tmp_path.iterdir())


def test_onnx_on_cuda_without_onnxruntime_gpu_is_a_config_error(monkeypatch):
    import onnxruntime

    from landcover.models.onnx import providers

    assert providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        providers("cuda")  # never silently the CPU
