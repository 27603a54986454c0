"""Render `config/schema.yaml` as the Markdown reference `docs/config.md`.

Run ``python -m landcover.configdoc > docs/config.md`` after changing the schema;
a test fails while the two differ, so the docs never drift from the schema.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from landcover.config import SCHEMA


def _type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type", "")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(spec.get("items"), dict):
        items = spec["items"]
        if "enum" in items:
            inner = " \\| ".join(f"`{v}`" for v in items["enum"])
        else:
            inner = items.get("type") or items.get("$ref", "object").rsplit("/", 1)[-1]
        return f"list of {inner}"
    if "oneOf" in spec:
        return " or ".join(str(s.get("type", "object")) for s in spec["oneOf"])
    return str(kind)


def _rows(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, spec in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        default = json.dumps(spec["default"]) if "default" in spec else "(required)"
        if len(default) > 60:
            default = "see schema"
        text = " ".join(str(spec.get("description", "")).split())
        yield f"| `{key}` | {_type(spec)} | `{default}` | {text} |"
        if spec.get("type") == "object":
            yield from _rows(spec, f"{key}.")
        if isinstance(spec.get("items"), dict) and spec["items"].get("type") == "object":
            yield from _rows(spec["items"], f"{key}[].")


def render(schema_path: Path = SCHEMA) -> str:
    """The Markdown reference of every config key: type, default, description."""
    schema = yaml.safe_load(schema_path.read_text())
    lines = [
        "# Configuration reference",
        "",
        "Generated from `config/schema.yaml` by `python -m landcover.configdoc`; do not edit.",
        "Every key is optional unless marked required; the default is filled in by the",
        "schema validation in `rules/common.smk`. Unknown keys are errors.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *_rows(schema),
        "",
        "An area (`areas.<name>`):",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *_rows(schema["$defs"]["area"], "areas.<name>."),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
