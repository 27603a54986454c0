"""The segmentation model: factory over segmentation-models-pytorch, checkpoints in and out.

Checkpoints hold only tensors and plain containers (dicts, lists, strings, numbers) so
that they load with ``torch.load(..., weights_only=True)``: no pickled classes, no code
runs when a checkpoint is read.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import segmentation_models_pytorch as smp
import torch
from torch import nn

from landcover.errors import ConfigError, DataError, SourceError
from landcover.io import atomic_path

log = logging.getLogger(__name__)

Arch = Literal["unet", "unetplusplus", "fpn", "deeplabv3plus"]
"""Architectures the workflow supports (smp names, lower case)."""

ARCHITECTURES: tuple[str, ...] = get_args(Arch)

OUTPUT_STRIDE = 32
"""Patch sides must be a multiple of this (five halvings in the smp encoders)."""


def check_model(arch: str, encoder: str, encoder_weights: str | None) -> None:
    """Check architecture, encoder and weights names without building anything.

    Raises:
        ConfigError: naming the key and the accepted values.

    """
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"model.arch: unknown architecture '{arch}'; use one of {list(ARCHITECTURES)}."
        )
    encoders = smp.encoders.encoders
    if encoder.startswith("tu-"):
        return  # timm universal encoders: timm checks the name when the model is built
    if encoder not in encoders:
        raise ConfigError(
            f"model.encoder: unknown encoder '{encoder}'; use an encoder of "
            "segmentation-models-pytorch (e.g. resnet18, resnet34, mobilenet_v2, "
            f"efficientnet-b0; all: {sorted(encoders)}) or a timm encoder as 'tu-<name>'."
        )
    if encoder_weights is not None:
        known = sorted(encoders[encoder]["pretrained_settings"])
        if encoder_weights not in known:
            raise ConfigError(
                f"model.encoder_weights: encoder '{encoder}' has no weights "
                f"'{encoder_weights}'; use null (random initialisation) or one of {known}."
            )


def build_model(
    arch: Arch,
    encoder: str,
    encoder_weights: str | None,
    in_channels: int,
    classes: int,
) -> nn.Module:
    """Build an smp segmentation model.

    Args:
        arch: ``unet``, ``unetplusplus``, ``fpn`` or ``deeplabv3plus``.
        encoder: smp encoder name (``resnet18``...) or ``tu-<timm name>``.
        encoder_weights: ``None`` for random initialisation, or pretrained weights
            (``imagenet``), downloaded on first use.
        in_channels: number of input bands.
        classes: number of output classes.

    Returns:
        The model, producing logits ``(N, classes, H, W)``.

    Raises:
        ConfigError: unknown architecture, encoder or weights.
        SourceError: pretrained weights cannot be downloaded (offline).

    """
    check_model(arch, encoder, encoder_weights)
    kwargs: dict[str, Any] = {
        "encoder_name": encoder,
        "encoder_weights": encoder_weights,
        "in_channels": in_channels,
        "classes": classes,
    }
    try:
        match arch:
            case "unet":
                return smp.Unet(**kwargs)
            case "unetplusplus":
                return smp.UnetPlusPlus(**kwargs)
            case "fpn":
                return smp.FPN(**kwargs)
            case "deeplabv3plus":
                return smp.DeepLabV3Plus(**kwargs)
    except (KeyError, RuntimeError, ValueError) as err:
        if encoder.startswith("tu-"):
            raise ConfigError(
                f"model.encoder: cannot build timm encoder '{encoder}' ({err}); check the "
                "name against `timm.list_models()` or use an smp encoder such as resnet18."
            ) from err
        raise
    except Exception as err:  # network errors come in many types (OSError, hub errors)
        if encoder_weights is None:
            raise
        raise SourceError(
            f"model.encoder_weights: cannot download '{encoder_weights}' weights for encoder "
            f"'{encoder}' ({type(err).__name__}: {err}). Set `model.encoder_weights: null` "
            "to train from scratch offline, or run once online to fill the Hugging Face / "
            "torch hub cache."
        ) from err
    raise AssertionError(f"unreachable: {arch}")  # pragma: no cover


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (a kill leaves the previous file or none).

    Args:
        path: where to write (``best.pt``, ``last.pt``).
        payload: tensors and plain containers only (see the module docstring).

    """
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: no code is unpickled).

    Raises:
        DataError: the file is missing, truncated or not a landcover checkpoint.

    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise DataError(
            f"Cannot read checkpoint '{path}' ({type(err).__name__}): delete it and rerun "
            f"the rule that makes it (train_model). Details: {err}"
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise DataError(
            f"'{path}' is not a landcover checkpoint (no 'state_dict'/'meta'); "
            "use a best.pt or last.pt written by train_model."
        )
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a trained model for prediction.

    Args:
        path: a ``best.pt`` or ``last.pt`` written by ``train_model``.
        device: where to put the model.

    Returns:
        The model in eval mode on ``device`` and the checkpoint's ``meta`` dict:
        ``model`` (arch, encoder, encoder_weights), ``bands``, ``classes`` (names),
        ``mean``/``std`` (per band, for :func:`~landcover.models.segmentation.data.normalise`),
        ``in_channels``, ``patch_size``, ``precision``, ``ignore_index``, ``epoch``, ``val_miou``.

    """
    ckpt = load_checkpoint(path, map_location="cpu")
    meta = dict(ckpt["meta"])
    cfg = meta["model"]
    # The weights come from the checkpoint: never download pretrained ones again.
    model = build_model(
        cfg["arch"], cfg["encoder"], None, meta["in_channels"], len(meta["classes"])
    )
    model.load_state_dict(ckpt["state_dict"])
    meta.setdefault("epoch", ckpt.get("epoch"))
    return model.to(device).eval(), meta
