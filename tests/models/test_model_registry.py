"""The model-kind registry and the scorer a trained model becomes for mapping."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from landcover import models
from landcover.errors import ConfigError
from landcover.models.segmentation.nets import build_model, save_checkpoint

BANDS = ["B02", "B03", "B04"]
CLASSES = ["tree", "water"]


def test_unknown_kind_names_the_key_and_the_kinds():
    with pytest.raises(ConfigError, match=r"model\.kind 'forest' is unknown; use one of"):
        models.load("forest", "best.pt", "cpu")


def test_a_new_kind_is_one_module_and_one_entry(monkeypatch):
    kind = types.ModuleType("landcover_test_kind")
    kind.train = lambda **kwargs: {"trained": sorted(kwargs)}
    kind.load = lambda path, device: ("scorer", path, device)
    monkeypatch.setitem(sys.modules, kind.__name__, kind)
    monkeypatch.setitem(models.KINDS, "test", kind.__name__)
    assert models.train("test", index="i", outputs="o") == {"trained": ["index", "outputs"]}
    assert models.load("test", "m.bin", "cpu") == ("scorer", "m.bin", "cpu")


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    net = build_model("unet", "tu-mobilenetv3_small_050", None, len(BANDS), len(CLASSES))
    meta = {
        "model": {"arch": "unet", "encoder": "tu-mobilenetv3_small_050", "encoder_weights": None},
        "bands": BANDS,
        "classes": CLASSES,
        "in_channels": len(BANDS),
        "patch_size": 32,
        "mean": [0.1, 0.1, 0.1],
        "std": [0.05, 0.05, 0.05],
        "precision": "fp32",
    }
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"state_dict": net.state_dict(), "meta": meta, "epoch": 1})
    return path


def test_segmentation_checkpoint_loads_as_a_scorer(checkpoint):
    scorer = models.load("segmentation", checkpoint, "cpu")
    assert scorer.bands == BANDS and scorer.classes == CLASSES
    assert scorer.window_multiple == 32 and scorer.meta["patch_size"] == 32
    batch = torch.full((2, len(BANDS), 32, 32), 0.1)
    batch[0, :, :4, :4] = float("nan")  # nodata reaches the scorer as NaN
    probs = scorer(batch)
    assert probs.shape == (2, len(CLASSES), 32, 32) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_scorer_on_a_missing_gpu_is_an_error(checkpoint):
    with pytest.raises(ConfigError, match="cuda"):
        models.load("segmentation", checkpoint, "cuda")
