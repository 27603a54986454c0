"""Tables across runs: the leaderboard of every experiment x device, and its report page."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from landcover.io import atomic_path, read_json

LEADERBOARD_COLUMNS = (
    "rank",
    "experiment",
    "device",
    "miou",
    "overall_accuracy",
    "macro_f1",
    "kl_divergence",
    "pixels",
    "model_kind",
)
"""The leaderboard's columns, in order; ``iou_<class>`` columns follow, one per class."""

MISSING = "n/a"
"""What the first-page tables show for a missing score."""

_SCORES = ("miou", "overall_accuracy", "macro_f1", "kl_divergence", "pixels")


def leaderboard(
    metrics: Sequence[str | Path],
    out: str | Path,
    model_kinds: Mapping[str, str] | None = None,
    page: str | Path | None = None,
) -> pd.DataFrame:
    """Collect experiments' ``metrics.json`` into one table, best mIoU first.

    Args:
        metrics: ``results/eval/{experiment}/{device}/metrics.json`` files.
        out: CSV with ``rank``, ``experiment``, ``device``, ``miou``,
            ``overall_accuracy``, ``macro_f1``, ``kl_divergence``, ``pixels``,
            ``model_kind`` (empty where unknown), then ``iou_<class>`` for each class
            of the metrics' ``per_class_iou`` (NaN: absent from the reference).
        model_kinds: experiment -> its ``model.kind``.
        page: where to write the report's first-page table
            (:func:`leaderboard_page`, reStructuredText); none when None.

    Returns:
        The table written.

    """
    rows = []
    classes: list[str] = []
    for path in metrics:
        m = read_json(path, "metrics", "delete it and rerun the evaluate rule")
        parts = Path(path).parts
        experiment = m.get("experiment") or (parts[-3] if len(parts) >= 3 else "")
        per_class = m.get("per_class_iou") or {}
        classes += [c for c in (m.get("classes") or per_class) if c not in classes]
        rows.append(
            {
                "experiment": experiment,
                "device": m.get("device") or (parts[-2] if len(parts) >= 2 else ""),
                **{key: m.get(key) for key in _SCORES},
                "model_kind": (model_kinds or {}).get(experiment, ""),
                **{f"iou_{name}": value for name, value in per_class.items()},
            }
        )
    iou = [f"iou_{name}" for name in classes]
    table = pd.DataFrame(rows, columns=[*LEADERBOARD_COLUMNS[1:], *iou])
    for column in [*_SCORES, *iou]:
        table[column] = pd.to_numeric(table[column])
    table = table.sort_values("miou", ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    if page is not None:
        with atomic_path(page) as tmp:
            tmp.write_text(leaderboard_page(table))
    return table


def _literal(text: object) -> str:
    """``text`` as an RST inline literal (experiment, device and kind names)."""
    text = str(text)
    if not text.strip():
        return MISSING
    if "`" in text:
        return _plain(text)
    return f"``{text}``"


def _plain(text: object) -> str:
    """``text`` with the characters RST would read as markup escaped."""
    return re.sub(r"([\\`*_|\[\]<>])", r"\\\1", str(text))


def _score(value: object) -> str:
    """A score with 3 decimals; ``n/a`` for a missing one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return MISSING
    return MISSING if math.isnan(number) else f"{number:.3f}"


def _list_table(title: str, rows: list[list[str]], options: Sequence[str] = ()) -> list[str]:
    """An RST ``list-table`` (first row: the header), wrapped in a scrolling block."""
    lines = [
        ".. raw:: html",
        "",
        '   <div style="overflow-x: auto">',
        "",
        f".. list-table:: {title}",
        "   :header-rows: 1",
        *(f"   {option}" for option in options),
        "",
    ]
    for row in rows:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return [*lines, "", ".. raw:: html", "", "   </div>", ""]


def leaderboard_page(table: pd.DataFrame) -> str:
    """The leaderboard as the report's first page shows it (reStructuredText).

    Two tables: every experiment x device ranked by mIoU, best on top (rank,
    experiment, device, model kind, mIoU, overall accuracy), and the IoU of each class
    (one row per class, one column per experiment x device in rank order). ``n/a`` marks a
    score that is missing: a class absent from the reference labels has no IoU.

    Args:
        table: the leaderboard (:func:`leaderboard`, or its CSV read back).

    Returns:
        RST text, to be embedded in the report's workflow description.

    """
    if table.empty:
        return "No experiment has been scored yet.\n"
    table = table.sort_values("rank", kind="stable") if "rank" in table else table
    ranks = table["rank"] if "rank" in table else pd.Series(range(1, len(table) + 1))
    kinds = table["model_kind"] if "model_kind" in table else pd.Series([""] * len(table))
    kinds = kinds.fillna("")
    board = [["rank", "experiment", "device", "model", "mIoU", "overall accuracy"]]
    for rank, (_, row), kind in zip(ranks, table.iterrows(), kinds, strict=True):
        board.append(
            [
                str(rank),
                _literal(row["experiment"]),
                _literal(row["device"]),
                _literal(kind),
                _score(row.get("miou")),
                _score(row.get("overall_accuracy")),
            ]
        )
    lines = _list_table(
        "Experiments on the held-out areas, best mIoU on top",
        board,
        options=[":widths: auto"],
    )
    classes = [c for c in table.columns if c.startswith("iou_")]
    if classes:
        runs = [
            f"{_literal(r['experiment'])} / {_literal(r['device'])}" for _, r in table.iterrows()
        ]
        per_class = [["class", *runs]]
        for column in classes:
            per_class.append([_plain(column[4:]), *(_score(v) for v in table[column])])
        lines += _list_table(
            "IoU per class (columns in rank order; n/a: class absent from the "
            "reference labels, not scored)",
            per_class,
            options=[":widths: auto", ":stub-columns: 1"],
        )
    return "\n".join(lines)
