"""Model factory and checkpoints (landcover.models.segmentation.nets)."""

from __future__ import annotations

import huggingface_hub
import pytest
import segmentation_models_pytorch as smp
import torch
from snakemake_interface_common.exceptions import WorkflowError

from landcover.config import validated
from landcover.errors import ConfigError, DataError, SourceError
from landcover.models.segmentation.nets import (
    ARCHITECTURES,
    build_model,
    check_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

TINY = "tu-mobilenetv3_small_050"  # 2 M parameters: fast on CPU


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_build_model_gives_logits_per_class(arch):
    model = build_model(arch, TINY, None, in_channels=5, classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 5, 32, 32))
    assert out.shape == (2, 3, 32, 32)


def test_build_model_smp_encoder():
    model = build_model("unet", "resnet18", None, in_channels=10, classes=9)
    assert isinstance(model, smp.Unet)
    assert model.encoder.conv1.in_channels == 10


def test_unknown_architecture():
    with pytest.raises(ConfigError, match=r"model\.arch: unknown architecture 'segnet'.*unet"):
        build_model("segnet", "resnet18", None, 4, 3)  # type: ignore[arg-type]


def test_unknown_encoder():
    with pytest.raises(ConfigError, match=r"model\.encoder: unknown encoder 'resnet7'"):
        check_model("unet", "resnet7", None)


def test_unknown_timm_encoder():
    with pytest.raises(ConfigError, match=r"model\.encoder: cannot build timm encoder"):
        build_model("unet", "tu-no_such_net", None, 4, 3)


def test_unknown_weights():
    with pytest.raises(ConfigError, match=r"model\.encoder_weights: .*'resnet18' has no weights"):
        check_model("unet", "resnet18", "landsat")


def test_unknown_model_key_is_a_schema_error():
    with pytest.raises(WorkflowError, match="depth"):
        validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}, "model": {"depth": 3}})


def test_model_defaults_come_from_the_schema(defaults):
    assert defaults["model"] == {
        "kind": "segmentation",
        "arch": "unet",
        "encoder": "resnet18",
        "encoder_weights": None,
        "trees": 400,  # the pixel kind's keys, beside the network's
        "max_pixels": 60000,
        "members": [],  # the ensemble kind's
    }


def test_imagenet_weights_offline_fail_clearly(monkeypatch):
    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("no connection")

    monkeypatch.setattr(smp.encoders, "hf_hub_download", offline)
    match = r"model\.encoder_weights: cannot download 'imagenet'.*null"
    with pytest.raises(SourceError, match=match):
        build_model("unet", "resnet18", "imagenet", 4, 3)


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    model = build_model("fpn", TINY, None, 4, 3).eval()
    meta = {
        "model": {"arch": "fpn", "encoder": TINY, "encoder_weights": None},
        "bands": ["B02", "B03", "B04", "B08"],
        "classes": ["a", "b", "c"],
        "in_channels": 4,
        "mean": [0.1] * 4,
        "std": [0.2] * 4,
        "precision": "fp32",
    }
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"state_dict": model.state_dict(), "meta": meta, "epoch": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["meta"]["classes"] == ["a", "b", "c"]

    loaded, loaded_meta = load_model(path)
    assert not loaded.training
    assert loaded_meta["epoch"] == 3 and loaded_meta["bands"] == meta["bands"]
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "best.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"Cannot read checkpoint .*best\.pt.*rerun"):
        load_checkpoint(path)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(DataError, match="not a landcover checkpoint"):
        load_checkpoint(path)
