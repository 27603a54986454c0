"""Tables across runs: the leaderboard of every experiment x device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from landcover.io import atomic_path, read_json


def leaderboard(metrics: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Collect experiments' ``metrics.json`` into one table, best mIoU first.

    Args:
        metrics: ``results/eval/{experiment}/{device}/metrics.json`` files.
        out: CSV with ``rank``, ``experiment``, ``device``, ``miou``,
            ``overall_accuracy``, ``macro_f1``, ``kl_divergence``, ``pixels``.

    Returns:
        The table written.

    """
    rows = []
    for path in metrics:
        m = read_json(path, "metrics", "delete it and rerun the evaluate rule")
        parts = Path(path).parts
        rows.append(
            {
                "experiment": m.get("experiment") or (parts[-3] if len(parts) >= 3 else ""),
                "device": m.get("device") or (parts[-2] if len(parts) >= 2 else ""),
                **{
                    key: m.get(key)
                    for key in ("miou", "overall_accuracy", "macro_f1", "kl_divergence", "pixels")
                },
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "device",
            "miou",
            "overall_accuracy",
            "macro_f1",
            "kl_divergence",
            "pixels",
        ],
    )
    table = table.sort_values("miou", ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    return table
