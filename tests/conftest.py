"""Shared fixtures: the repository root and the demo config as a dict with defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


def validated(config: dict) -> dict:
    """The config as Snakemake sees it: validated against the schema, defaults filled."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, schema=str(ROOT / "config" / "schema.yaml"))
    return config


@pytest.fixture
def demo_config() -> dict:
    return validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
