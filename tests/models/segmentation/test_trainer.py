"""The segmentation trainer: outputs, resume, determinism, devices, DDP, errors.

Training reads the session's tiny synthetic patch store (the ``patch_store`` fixture).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from landcover.config import validated
from landcover.errors import ConfigError
from landcover.models.segmentation.data import EpochSampler
from landcover.models.segmentation.nets import load_model
from landcover.models.segmentation.resume import initial_state, load_state, save_state
from landcover.models.segmentation.trainer import train as train_network

DEFAULTS = validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})
# 2 M parameters
MODEL = DEFAULTS["model"] | {"arch": "unet", "encoder": "tu-mobilenetv3_small_050"}
TRAINING = DEFAULTS["training"] | {"epochs": 3, "batch_size": 8, "patience": 0}
OUTPUTS = ("best.pt", "last.pt", "history.csv", "hardware.json")
LOSSES = ["train_loss", "val_loss", "val_miou"]

# Arguments as JSON (for the subprocess runs), turned into the trainer's by `kwargs`
TO_KWARGS = """
from landcover.models import Outputs
from landcover.prepare.store import stores

def kwargs(args):
    args = dict(args)
    areas = args.pop("areas")
    root, out = args.pop("patches_dir"), args.pop("out_dir")
    images = [f"{root}/{a}/images.npy" for a in areas]
    labels = [f"{root}/{a}/labels.npy" for a in areas]
    names = [f"{out}/{name}" for name in ("best.pt", "last.pt", "history.csv", "hardware.json")]
    return args | {"stores": stores(areas, images, labels), "outputs": Outputs(*names)}
"""
exec(TO_KWARGS)


def run_args(store, out_dir, **overrides):
    args = {
        **{k: str(store[k]) for k in ("patches_dir", "index", "class_weights")},
        "areas": store["areas"],
        "out_dir": str(out_dir),
        "bands": store["bands"],
        "classes": [{"name": c, "codes": [i + 1]} for i, c in enumerate(store["classes"])],
        "model": MODEL,
        "training": TRAINING,
        "device": "cpu",
        "threads": 1,
        "seed": 7,
        "processes": 1,
    }
    return args | overrides


def train_model(**args):
    return train_network(**kwargs(args))  # noqa: F821 (defined by exec above)


@pytest.fixture(scope="module")
def reference(patch_store, tmp_path_factory):
    """An uninterrupted three-epoch run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    summary = train_model(**run_args(patch_store, out))
    return out, summary


def history(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "history.csv")


def test_training_writes_all_outputs(reference, patch_store):
    out, summary = reference
    assert all((out / name).exists() for name in OUTPUTS)
    assert not (out / "resume").exists()
    h = history(out)
    assert h["epoch"].tolist() == [1, 2, 3]
    expected = [
        "epoch", "lr", *LOSSES, *(f"iou_{c}" for c in patch_store["classes"]),
        "epoch_seconds", "train_patches_per_s", "peak_memory_mb",
    ]  # fmt: skip
    assert h.columns.tolist() == expected
    assert h["val_miou"].between(0, 1).all() and (h["train_patches_per_s"] > 0).all()
    assert summary["best_miou"] == pytest.approx(h["val_miou"].max())

    hardware = json.loads((out / "hardware.json").read_text())
    assert hardware["device"] == "cpu" and hardware["precision"] == "fp32"
    assert hardware["seed"] == 7 and hardware["threads"] == 1
    for key in ("device_name", "cpu_model", "gpu_name", "gpu_memory_gb", "torch", "cuda", "cudnn"):
        assert key in hardware


def test_checkpoints_load_weights_only(reference, patch_store):
    bands, classes = patch_store["bands"], patch_store["classes"]
    out, summary = reference
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and len(last["history"]) == 3
    model, meta = load_model(out / "best.pt")
    assert not model.training
    assert meta["classes"] == classes and meta["bands"] == bands
    assert meta["model"]["encoder"] == MODEL["encoder"] and meta["precision"] == "fp32"
    assert len(meta["mean"]) == len(meta["std"]) == len(bands)
    assert meta["epoch"] == summary["best_epoch"]
    with torch.no_grad():
        assert model(torch.zeros(1, len(bands), 32, 32)).shape == (1, len(classes), 32, 32)


def test_same_seed_same_history(reference, patch_store, tmp_path):
    out, _ = reference
    train_model(**run_args(patch_store, tmp_path))
    a, b = history(out)[LOSSES].to_numpy(), history(tmp_path)[LOSSES].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)


KILLED_RUN = (
    TO_KWARGS
    + """
import json, os, signal, sys
import landcover.models.segmentation.resume as resume
from landcover.models.segmentation.losses import SegmentationLoss
from landcover.models.segmentation.trainer import train

saved, calls = [], []
save, forward = resume.save_checkpoint, SegmentationLoss.forward

def save_and_count(path, payload):
    save(path, payload)
    saved.append(path)

def forward_or_die(self, logits, target):
    if any(str(p).endswith("last.pt") for p in saved):  # epoch 1 is complete
        calls.append(1)
        if len(calls) == 2:  # mid-epoch 2, after one optimiser step
            os.kill(os.getpid(), signal.SIGKILL)
    return forward(self, logits, target)

resume.save_checkpoint = save_and_count
SegmentationLoss.forward = forward_or_die
train(**kwargs(json.loads(open(sys.argv[1]).read())))
"""
)


def run_killed(tmp_path: Path, args: dict) -> None:
    """Run training in a subprocess that SIGKILLs itself mid-epoch 2 (KILLED_RUN)."""
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "killed.py").write_text(KILLED_RUN)
    run = subprocess.run(
        [sys.executable, str(tmp_path / "killed.py"), str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr


def test_resume_after_kill(reference, patch_store, tmp_path, caplog):
    out = tmp_path / "out"
    args = run_args(patch_store, out)
    run_killed(tmp_path, args)
    assert (out / "resume" / "last.pt").exists()
    assert not any((out / name).exists() for name in OUTPUTS)  # nothing looks complete

    with caplog.at_level(logging.INFO, logger="landcover"):
        train_model(**args)
    assert "after epoch 1" in caplog.text
    h = history(out)
    assert h["epoch"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(h[LOSSES], history(reference[0])[LOSSES], rtol=1e-6)


def test_moving_average_is_what_is_validated_and_kept(patch_store, tmp_path):
    # a decay this close to 1 keeps the average at the weights of the first step
    frozen = {**TRAINING, "ema": 0.999999}
    train_model(**run_args(patch_store, tmp_path, training=frozen))
    h = history(tmp_path)
    assert h["train_loss"].iloc[0] != pytest.approx(h["train_loss"].iloc[-1], rel=1e-3)
    np.testing.assert_allclose(h["val_loss"], h["val_loss"].iloc[0], rtol=1e-4)
    best = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in last["ema"].items()}
    for name, value in best.items():  # the kept model is the average, not the raw weights
        torch.testing.assert_close(value, averaged[name])
    moved = [
        k for k, v in best.items() if v.is_floating_point() and not v.equal(last["state_dict"][k])
    ]
    assert moved


def test_resume_restores_the_moving_average(patch_store, tmp_path):
    averaged = {**TRAINING, "ema": 0.9}
    whole = tmp_path / "whole"
    train_model(**run_args(patch_store, whole, training=averaged))
    out = tmp_path / "out"
    args = run_args(patch_store, out, training=averaged)
    run_killed(tmp_path, args)
    train_model(**args)
    np.testing.assert_allclose(history(out)[LOSSES], history(whole)[LOSSES], rtol=1e-6)


def test_changed_config_does_not_resume(patch_store, tmp_path, caplog):
    resume = tmp_path / "resume"
    resume.mkdir()
    torch.save({"state_dict": {}, "meta": {}, "fingerprint": "other"}, resume / "last.pt")
    with caplog.at_level(logging.WARNING, logger="landcover"):
        train_model(**run_args(patch_store, tmp_path, training={**TRAINING, "epochs": 1}))
    assert "another configuration" in caplog.text
    assert history(tmp_path)["epoch"].tolist() == [1]


def truncate(path: Path) -> None:
    """Cut a file in half, as a full disk or a crash outside the atomic writer leaves it."""
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def test_truncated_resume_state_is_not_resumed_from(patch_store, tmp_path, caplog):
    resume = tmp_path / "resume"
    resume.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(10_000)}, "meta": {}}, resume / "last.pt")
    truncate(resume / "last.pt")
    with caplog.at_level(logging.WARNING, logger="landcover"):
        train_model(**run_args(patch_store, tmp_path, training={**TRAINING, "epochs": 1}))
    assert "cannot resume from" in caplog.text and "starting afresh" in caplog.text
    assert history(tmp_path)["epoch"].tolist() == [1]
    assert not resume.exists()


def tiny_parts() -> tuple:
    """A tiny model with its optimiser, schedule, scaler and sampler, as load_state takes."""
    torch.manual_seed(0)
    core = torch.nn.Linear(8, 8)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return core, torch.optim.Adam(core.parameters()), None, scaler, EpochSampler(4, 0)


@pytest.mark.parametrize("cut", ["last.pt", "best-0001.pt", None])
def test_resume_state_loads_whole_or_not_at_all(tmp_path, caplog, cut):
    """A truncated epoch state, or the best checkpoint it names, is not resumed from."""
    state = initial_state() | {"epoch": 1, "best_epoch": 1, "best_miou": 0.5}
    save_state(tmp_path, "id", {}, *tiny_parts(), state, improved=True)
    if cut is not None:
        truncate(tmp_path / cut)
    restored = initial_state()
    with caplog.at_level(logging.WARNING, logger="landcover"):
        resumed = load_state(tmp_path, "id", *tiny_parts(), restored)
    assert resumed == (cut is None)
    assert restored["epoch"] == (1 if cut is None else 0)
    assert ("cannot resume" in caplog.text) == (cut is not None)


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "adam", "schedule": "cosine", "focal_gamma": 2.0, "hard_mining": 0.5,
         "oversample_rare": 0.5, "precision": "bf16"},
        {"optimizer": "sgd", "schedule": "constant", "dice_weight": 0.0, "augment": False,
         "precision": "fp16", "channels_last": False, "num_workers": 1},
    ],
)  # fmt: skip
def test_training_options(patch_store, tmp_path, options):
    train_model(**run_args(patch_store, tmp_path, training={**TRAINING, "epochs": 2, **options}))
    h = history(tmp_path)
    assert h["epoch"].tolist() == [1, 2] and np.isfinite(h["train_loss"]).all()
    hardware = json.loads((tmp_path / "hardware.json").read_text())
    assert hardware["precision"] == options["precision"]


def test_early_stopping(patch_store, tmp_path):
    # no moving average: its batch-norm statistics would still move while the weights stall
    stalled = {**TRAINING, "epochs": 6, "patience": 1, "lr": 1e-9, "schedule": "constant"}
    stalled["ema"] = 0.0
    train_model(**run_args(patch_store, tmp_path, training=stalled))
    assert len(history(tmp_path)) < 6


def test_validates_on_holdout_without_val(make_patch_store, tmp_path, caplog):
    areas = {"a": {"train": 6}, "h": {"holdout": 3}}
    store = make_patch_store(tmp_path / "patches", areas=areas)
    with caplog.at_level(logging.WARNING, logger="landcover"):
        train_model(**run_args(store, tmp_path / "out", training={**TRAINING, "epochs": 1}))
    assert "no 'val' patches" in caplog.text
    assert (tmp_path / "out" / "best.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable_is_an_error(patch_store, tmp_path):
    with pytest.raises(ConfigError, match=r"device 'cuda'.*torch\.cuda\.is_available\(\) is False"):
        train_model(**run_args(patch_store, tmp_path / "out", device="cuda"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"model": MODEL | {"arch": "segnet"}}, r"model\.arch: unknown architecture"),
        ({"model": MODEL | {"encoder": "resnet7"}}, r"model\.encoder: unknown encoder 'resnet7'"),
        ({"bands": ["B02", "B03", "B04"]}, r"imagery\.bands lists 3 bands .* has 4 channels"),
        ({"classes": ["tree", "water"]}, r"classes: the config lists \['tree', 'water'\]"),
        ({"classes": ["water", "tree", "built_up"]}, r"classes: the config lists"),
        (
            {"training": TRAINING | {"ce_weight": 0.0, "dice_weight": 0.0}},
            r"training\.ce_weight \+ training\.dice_weight must be > 0",
        ),
        ({"device": "tpu"}, r"device: unknown device 'tpu'"),
    ],
)
def test_config_errors_fail_before_training(patch_store, tmp_path, overrides, match):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        train_model(**run_args(patch_store, out, **overrides))
    assert not out.exists()


def test_class_weights_mismatch(patch_store, tmp_path):
    weights = json.loads(Path(patch_store["class_weights"]).read_text())
    weights["classes"] = ["tree", "water", "urban"]
    path = tmp_path / "class_weights.json"
    path.write_text(json.dumps(weights))
    with pytest.raises(ConfigError, match=r"class_weights\.json has \['tree', 'water', 'urban'\]"):
        train_model(**run_args(patch_store, tmp_path / "out", class_weights=str(path)))


def test_patch_size_must_suit_the_model(make_patch_store, tmp_path):
    store = make_patch_store(tmp_path / "patches", size=24)
    with pytest.raises(ConfigError, match=r"patches\.size: patches are 24 px.*multiple of 32"):
        train_model(**run_args(store, tmp_path / "out"))


DDP_RUN = (
    TO_KWARGS
    + """
import json, sys
from landcover.models.segmentation.trainer import train
train(**kwargs(json.loads(open(sys.argv[1]).read())))
"""
)


def test_ddp_gloo_two_processes_under_torchrun(patch_store, tmp_path, repo_root):
    out = tmp_path / "out"
    args = run_args(patch_store, out, training={**TRAINING, "epochs": 2}, threads=2)
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "ddp.py").write_text(DDP_RUN)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(tmp_path / "ddp.py"), str(tmp_path / "args.json"),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=repo_root
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert history(out)["epoch"].tolist() == [1, 2]
    hardware = json.loads((out / "hardware.json").read_text())
    assert hardware["world_size"] == 2 and hardware["threads"] == 1
    load_model(out / "best.pt")


def test_ddp_started_by_train_model(patch_store, tmp_path):
    out = tmp_path / "out"
    summary = train_model(
        **run_args(patch_store, out, training={**TRAINING, "epochs": 1}, threads=2, processes=2)
    )
    assert summary["epochs"] == 1
    assert json.loads((out / "hardware.json").read_text())["world_size"] == 2
