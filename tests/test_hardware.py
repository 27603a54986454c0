"""Device settings (landcover.hardware): channels-last memory format."""

from __future__ import annotations

import torch

from landcover.hardware import resolve_channels_last


def test_channels_last_auto_is_on_for_cpu_and_cuda_only():
    on = {t: resolve_channels_last("auto", torch.device(t)) for t in ("cpu", "cuda", "mps")}
    assert on == {"cpu": True, "cuda": True, "mps": False}
    assert resolve_channels_last(False, torch.device("cpu")) is False
    assert resolve_channels_last(True, torch.device("mps")) is True
