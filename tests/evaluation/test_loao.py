"""Leave-one-area-out (evaluation.loao): the summary table over folds, the config check.

The folds planned and run by the workflow: tests/workflow/test_loao_workflow.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from landcover.config import area_table, check_config, validated
from landcover.errors import ConfigError, DataError
from landcover.evaluation.loao import MEAN_ROW, fold_summary, summarise_folds

NAN = math.nan


def fold(iou, support, miou, names=("tree", "water", "built_up")):
    """A fold's hand-made metrics.json (headline scores) and per_class_iou.csv table."""
    metrics = {
        "miou": miou,
        "overall_accuracy": miou + 0.1,
        "macro_f1": miou + 0.05,
        "kl_divergence": 1 - miou,
        "pixels": int(sum(support)),
        "experiment": "unet",
    }
    table = pd.DataFrame(
        {"class": list(names), "index": range(len(names)), "iou": iou, "support": support}
    )
    return metrics, table


def test_summary_has_a_row_per_fold_and_the_mean():
    folds = {
        "north": fold([0.5, 0.8, 0.0], [100, 50, 50], miou=0.4),
        "south": fold([0.7, 0.6, 0.2], [200, 100, 100], miou=0.5),
    }
    table = summarise_folds(folds)
    assert table["holdout"].tolist() == ["north", "south", MEAN_ROW]
    north = table.iloc[0]
    # the fold's own headline scores (evaluate's), not recomputed
    assert north["miou"] == 0.4 and north["macro_f1"] == pytest.approx(0.45)
    assert north["pixels"] == 200 and north["support_water"] == 50
    assert north["iou_built_up"] == 0.0  # present, never right: 0, not NaN
    mean = table.iloc[-1]
    assert mean["miou"] == pytest.approx(0.45) and mean["kl_divergence"] == pytest.approx(0.55)
    assert mean["iou_built_up"] == pytest.approx(0.1)
    assert mean["pixels"] == 600 and mean["support_tree"] == 300  # totals over the folds
    assert [c for c in table.columns if c.startswith("iou_")] == [
        "iou_tree",
        "iou_water",
        "iou_built_up",
    ]


def test_class_absent_from_a_fold_is_nan_there_and_skipped_by_the_mean():
    folds = {
        "north": fold([0.5, NAN, 0.4], [100, 0, 50], miou=0.45),
        "south": fold([0.7, 0.6, 0.2], [200, 100, 100], miou=0.5),
        "east": fold([0.3, NAN, NAN], [80, 0, 0], miou=0.3),
    }
    table = summarise_folds(folds).set_index("holdout")
    assert math.isnan(table.loc["north", "iou_water"])
    assert table.loc[MEAN_ROW, "iou_water"] == pytest.approx(0.6)  # not (0 + 0.6 + 0) / 3
    assert table.loc[MEAN_ROW, "iou_built_up"] == pytest.approx(0.3)
    assert table.loc[MEAN_ROW, "support_water"] == 100


def test_class_absent_from_every_fold_stays_nan():
    folds = {
        "north": fold([0.5, NAN, 0.4], [100, 0, 50], miou=0.45),
        "south": fold([0.7, NAN, 0.2], [200, 0, 100], miou=0.45),
    }
    table = summarise_folds(folds)
    assert table["iou_water"].isna().all()
    assert np.isfinite(table["miou"]).all()


def test_folds_with_different_classes_are_an_error():
    folds = {
        "north": fold([0.5, 0.4], [100, 50], miou=0.45, names=("tree", "water")),
        "south": fold([0.7, 0.2], [200, 100], miou=0.45, names=("tree", "bare")),
    }
    with pytest.raises(DataError, match=r"Fold 'south'.*classes"):
        summarise_folds(folds)


def test_fold_without_its_headline_scores_is_an_error():
    metrics, table = fold([0.5, 0.4, 0.1], [100, 50, 10], miou=0.3)
    del metrics["kl_divergence"]
    with pytest.raises(DataError, match=r"Fold 'north'.*kl_divergence.*rerun"):
        summarise_folds({"north": (metrics, table)})


def test_summary_file_writes_nan(tmp_path):
    metrics, per_class = [], []
    for area, (scores, table) in {
        "north": fold([0.5, NAN, 0.4], [100, 0, 50], miou=0.45),
        "south": fold([0.7, 0.6, 0.2], [200, 100, 100], miou=0.5),
    }.items():
        metrics.append(tmp_path / f"{area}.json")
        metrics[-1].write_text(json.dumps(scores))
        per_class.append(tmp_path / f"{area}.csv")
        table.to_csv(per_class[-1], index=False, na_rep="NaN")
    out = tmp_path / "summary.csv"
    fold_summary(metrics=metrics, per_class=per_class, folds=["north", "south"], out=out)
    text = out.read_text().splitlines()
    assert len(text) == 1 + 2 + 1
    assert text[1].startswith("north,") and "NaN" in text[1] and text[-1].startswith("mean,")


def test_switch_is_off_by_default(tiny_config):
    # (the workflow's run of the default target then has nothing left to do: no fold)
    assert validated(tiny_config(evaluate={}))["evaluate"]["leave_one_area_out"] is False


def test_fewer_than_two_areas_is_a_config_error(tiny_config):
    config = tiny_config(evaluate={"leave_one_area_out": True}, holdout=[])
    config["areas"] = {"city": config["areas"]["city"]}
    config["split"]["method"] = "blocks"
    config = validated(config)
    with pytest.raises(ConfigError, match=r"evaluate.leave_one_area_out needs at least 2 areas"):
        check_config(config, area_table(config["areas"]))


def test_mean_row_carries_the_spread_over_the_folds():
    folds = {
        "north": fold([0.5, NAN, 0.4], [100, 0, 50], miou=0.45),
        "south": fold([0.7, 0.6, 0.2], [200, 100, 100], miou=0.5),
        "east": fold([0.3, 0.2, 0.3], [80, 20, 10], miou=0.3),
    }
    table = summarise_folds(folds).set_index("holdout")
    assert table.loc[MEAN_ROW, "std_miou"] == pytest.approx(np.std([0.45, 0.5, 0.3], ddof=1))
    assert table.loc[MEAN_ROW, "std_iou_tree"] == pytest.approx(0.2)
    # NaN skipped: two finite values
    assert table.loc[MEAN_ROW, "std_iou_water"] == pytest.approx(np.std([0.6, 0.2], ddof=1))
    assert table.loc[["north", "south", "east"], "std_miou"].isna().all()  # the mean row's
    assert "std_pixels" not in table.columns and "std_support_tree" not in table.columns
    one = summarise_folds({"north": folds["north"]}).set_index("holdout")
    assert math.isnan(one.loc[MEAN_ROW, "std_miou"])  # one fold: no spread


def test_k_fold_summary_names_its_folds_in_a_fold_column(tmp_path):
    folds = {
        "k0": fold([0.5, 0.1, 0.4], [100, 10, 50], miou=0.33),
        "k1": fold([0.7, 0.6, 0.2], [200, 100, 100], miou=0.5),
    }
    table = summarise_folds(folds, scheme="folds")
    assert table["fold"].tolist() == ["k0", "k1", MEAN_ROW] and "holdout" not in table
    with pytest.raises(ConfigError, match="scheme 'kfold' is unknown"):
        summarise_folds(folds, scheme="kfold")
    metrics, table = fold([0.5, 0.4, 0.1], [100, 50, 10], miou=0.3)
    del metrics["miou"]
    with pytest.raises(DataError, match=r"Fold 'k0'.*results/folds/k0/eval/.*`?folds`? target"):
        summarise_folds({"k0": (metrics, table)}, scheme="folds")
