"""Shared fixtures: the repository root and the demo config as a dict with defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from landcover.config import validated

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def demo_config() -> dict:
    return validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture(scope="session")
def defaults() -> dict:
    """Every section with the schema's defaults (the library keeps none of its own)."""
    return validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})
