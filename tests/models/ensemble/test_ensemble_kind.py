"""The ensemble model kind: its artefact, and a scorer that averages its members'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from landcover import models
from landcover.errors import ConfigError, DataError
from landcover.models import Outputs
from landcover.models.ensemble import EnsembleScorer
from landcover.models.segmentation.nets import build_model, save_checkpoint

ENCODER = "tu-mobilenetv3_small_050"


def outputs_in(folder: Path) -> Outputs:
    """The declared outputs of a training run in ``folder``."""
    return Outputs(*(folder / n for n in ("best.pt", "last.pt", "history.csv", "hardware.json")))


def train_kwargs(store: dict, outputs: Outputs, model: dict, **extra: object) -> dict:
    """The keyword arguments scripts/train_model.py passes, on the tiny patch store."""
    return {
        "stores": store["stores"],
        "index": store["index"],
        "class_weights": store["class_weights"],
        "outputs": outputs,
        "bands": store["bands"],
        "classes": store["classes"],
        "model": model,
        "training": {},
        "device": "cpu",
        "threads": 1,
        "seed": 0,
        "processes": 1,
        **extra,
    }


@pytest.fixture(scope="module")
def results(patch_store, tmp_path_factory) -> Path:
    """``results/models/{unet,pixel}/cpu/best.pt``: a tiny network and tiny trees."""
    root = tmp_path_factory.mktemp("ensemble") / "results" / "models"
    pixel = {"kind": "pixel", "trees": 20, "max_pixels": 2000}
    models.train("pixel", **train_kwargs(patch_store, outputs_in(root / "pixel/cpu"), pixel))
    torch.manual_seed(0)
    bands, classes = patch_store["bands"], patch_store["classes"]
    net = build_model("unet", ENCODER, None, len(bands), len(classes))
    meta = {
        "model": {"arch": "unet", "encoder": ENCODER, "encoder_weights": None},
        "bands": bands,
        "classes": classes,
        "in_channels": len(bands),
        "patch_size": 32,
        "mean": [0.2] * len(bands),
        "std": [0.1] * len(bands),
        "precision": "fp32",
    }
    save_checkpoint(root / "unet/cpu/best.pt", {"state_dict": net.state_dict(), "meta": meta})
    return root


def members_of(results: Path, *names: str) -> list[dict[str, str]]:
    """The ``members`` argument of train for experiments named after their kinds' folders."""
    kinds = {"unet": "segmentation", "pixel": "pixel"}
    return [
        {"experiment": n, "kind": kinds[n], "path": str(results / n / "cpu/best.pt")} for n in names
    ]


@pytest.fixture(scope="module")
def ensemble(results, patch_store) -> Outputs:
    """``results/models/ensemble/cpu/``: the U-Net (first: it normalises its batch in
    place) and the trees."""
    outputs = outputs_in(results / "ensemble/cpu")
    model = {"kind": "ensemble", "members": ["unet", "pixel"]}
    members = members_of(results, "unet", "pixel")
    models.train("ensemble", **train_kwargs(patch_store, outputs, model), members=members)
    return outputs


def test_training_writes_an_artefact_that_refers_to_the_members(ensemble):
    for path in (ensemble.best, ensemble.last):
        meta = torch.load(path, weights_only=True)["meta"]
        assert meta["kind"] == "ensemble" and meta["weights"] == [0.5, 0.5]
        assert meta["members"] == [
            {"experiment": "unet", "kind": "segmentation", "path": "../../unet/cpu/best.pt"},
            {"experiment": "pixel", "kind": "pixel", "path": "../../pixel/cpu/best.pt"},
        ]  # relative to its own folder: loads from any working directory
    history = pd.read_csv(ensemble.history)
    assert {"epoch", "train_loss", "val_loss", "val_miou"} <= set(history.columns)
    hardware = json.loads(ensemble.hardware.read_text())
    assert hardware["device"] == "cpu" and hardware["members"] == ["unet", "pixel"]


def test_the_history_draws_as_learning_curves(ensemble, tmp_path):
    from landcover.report.figures import plot_learning_curves

    plot_learning_curves(ensemble.history, tmp_path / "curves.png", title="ensemble (cpu)")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_scorer_is_the_mean_of_its_members(ensemble, results, patch_store, monkeypatch):
    monkeypatch.chdir(results.parent.parent)  # another working directory
    scorer = models.load("ensemble", ensemble.best, "cpu")
    unet = models.load("segmentation", results / "unet/cpu/best.pt", "cpu")
    pixel = models.load("pixel", results / "pixel/cpu/best.pt", "cpu")
    assert scorer.bands == patch_store["bands"] and scorer.classes == patch_store["classes"]
    assert scorer.window_multiple == 32 and str(scorer.device) == "cpu"
    assert scorer.channels_last is False  # the last member's (the trees')
    assert [m["experiment"] for m in scorer.meta["members"]] == ["unet", "pixel"]
    images = torch.from_numpy(patch_store["read"]("a", 3)[0])
    probs = scorer(images.clone())
    assert probs.shape == (3, len(scorer.classes), 32, 32) and probs.dtype == np.float32
    expected = (unet(images.clone()) + pixel(images.clone())) / 2
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_members_in_the_other_order_give_the_same_map(ensemble, results, patch_store):
    reversed_ = results / "reversed/cpu"
    model = {"kind": "ensemble", "members": ["pixel", "unet"]}
    members = members_of(results, "pixel", "unet")
    outputs = outputs_in(reversed_)
    models.train("ensemble", **train_kwargs(patch_store, outputs, model), members=members)
    images = torch.from_numpy(patch_store["read"]("b", 2)[0])
    first = models.load("ensemble", ensemble.best, "cpu")(images.clone())
    second = models.load("ensemble", outputs.best, "cpu")
    assert second.channels_last is True  # the U-Net's layout on the CPU
    batch = torch.empty_like(images, memory_format=torch.channels_last).copy_(images)
    np.testing.assert_allclose(second(batch), first, atol=1e-6)


class Fake:
    """A scorer that overwrites its batch and returns fixed probabilities."""

    channels_last = False

    def __init__(self, value: float, multiple: int = 1, device: str = "cpu") -> None:
        self.value, self.window_multiple, self.device = value, multiple, device
        self.bands, self.classes, self.meta = ["B02"], ["tree", "water"], {}
        self.seen: list[float] = []

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        self.seen.append(float(batch.sum()))
        batch.fill_(-1.0)
        b, _, h, w = batch.shape
        return np.stack([np.full((b, h, w), self.value), np.full((b, h, w), 1 - self.value)], 1)


def test_each_member_scores_the_batch_as_the_engine_built_it():
    members = [Fake(0.2, 4), Fake(0.6, 6, "cuda"), Fake(1.0)]
    scorer = EnsembleScorer(members, {"kind": "ensemble"})
    assert scorer.window_multiple == 12 and torch.device(scorer.device).type == "cuda"
    probs = scorer(torch.ones((2, 1, 4, 4)))
    assert [m.seen for m in members] == [[32.0], [32.0], [32.0]]  # none saw another's writes
    np.testing.assert_allclose(probs[:, 0], 0.6, atol=1e-6)
    assert probs.dtype == np.float32 and probs.shape == (2, 2, 4, 4)


def test_members_that_score_other_classes_are_an_error():
    other = Fake(0.5)
    other.classes = ["tree", "built_up"]
    with pytest.raises(DataError, match="different classes"):
        EnsembleScorer([Fake(0.5), other], {})
    with pytest.raises(DataError, match="at least 2 members"):
        EnsembleScorer([Fake(0.5)], {})


def test_a_missing_member_names_it_and_the_fix(results, patch_store, tmp_path):
    outputs = outputs_in(results / "lonely/cpu")
    model = {"kind": "ensemble", "members": ["unet", "pixel"]}
    members = members_of(results, "unet", "pixel")
    models.train("ensemble", **train_kwargs(patch_store, outputs, model), members=members)
    payload = torch.load(outputs.best, weights_only=True)
    payload["meta"]["members"][1]["path"] = "../../gone/cpu/best.pt"
    torch.save(payload, outputs.best)
    with pytest.raises(DataError, match=r"member 'pixel' has no trained model .*rerun"):
        models.load("ensemble", outputs.best, "cpu")


def test_not_an_ensemble_is_a_data_error(results):
    with pytest.raises(DataError, match="is not an ensemble"):
        models.load("ensemble", results / "pixel/cpu/best.pt", "cpu")


def test_training_without_the_members_models_is_an_error(results, patch_store):
    outputs = outputs_in(results / "orphan/cpu")
    model = {"kind": "ensemble", "members": ["unet", "pixel"]}
    with pytest.raises(ConfigError, match="`members` input"):
        models.train("ensemble", **train_kwargs(patch_store, outputs, model), members=[])
    assert not outputs.best.exists()


def test_a_member_trained_on_other_classes_is_an_error(results, patch_store):
    outputs = outputs_in(results / "mismatch/cpu")
    model = {"kind": "ensemble", "members": ["unet", "pixel"]}
    kwargs = train_kwargs(patch_store, outputs, model) | {"classes": ["tree", "water"]}
    members = members_of(results, "unet", "pixel")
    with pytest.raises(DataError, match=r"member 'unet' .*scores classes"):
        models.train("ensemble", **kwargs, members=members)
    assert not outputs.best.exists()
