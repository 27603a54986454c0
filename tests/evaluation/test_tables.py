"""Tables across experiments (evaluation.tables): the leaderboard."""

from __future__ import annotations

import json

import pandas as pd

from landcover.evaluation import tables


def test_leaderboard_ranks_by_miou(tmp_path):
    paths = []
    for exp, miou in [("small", 0.4), ("big", 0.6), ("broken", None)]:
        p = tmp_path / exp / "cpu" / "metrics.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"experiment": exp, "device": "cpu", "miou": miou}))
        paths.append(p)
    table = tables.leaderboard(paths, tmp_path / "leaderboard.csv")
    assert list(table["experiment"]) == ["big", "small", "broken"]
    saved = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(saved["rank"]) == [1, 2, 3]
