"""Tables across experiments (evaluation.tables): the leaderboard and the report's first page."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest

from landcover.evaluation import tables

# Snakemake renders RST as below (writer_name), which docutils 0.22 warns about.
pytestmark = pytest.mark.filterwarnings('ignore:Argument "writer_name":PendingDeprecationWarning')

CLASSES = ["tree", "built_up", "water"]


def to_html(rst: str) -> str:
    """RST as the report renders it (snakemake.report: docutils' html_body)."""
    core = pytest.importorskip("docutils.core")  # comes with Snakemake
    html = core.publish_parts(rst, writer_name="html")["html_body"]
    assert "System Message" not in html  # no RST error or warning
    return html


def tables_of(rst: str) -> list[list[list[str]]]:
    """The tables of an RST text: rows of cell texts, the header row first."""
    core = pytest.importorskip("docutils.core")
    nodes = pytest.importorskip("docutils.nodes")
    doctree = core.publish_doctree(rst)
    return [
        [[entry.astext() for entry in row.children] for row in table.findall(nodes.row)]
        for table in doctree.findall(nodes.table)
    ]


def write_metrics(root: Path, experiment: str, miou, iou, device: str = "cpu") -> Path:
    """A hand-made ``metrics.json`` as the evaluate rule writes it (null: no IoU)."""
    path = root / "results" / "eval" / experiment / device / "metrics.json"
    path.parent.mkdir(parents=True)
    metrics = {
        "experiment": experiment,
        "device": device,
        "classes": CLASSES,
        "miou": miou,
        "overall_accuracy": None if miou is None else miou + 0.2,
        "macro_f1": miou,
        "kl_divergence": 0.1,
        "pixels": 1000,
        "per_class_iou": dict(zip(CLASSES, iou, strict=True)),
    }
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture
def scored(tmp_path) -> list[Path]:
    """Three runs: the per-pixel baseline, a better network, and a failed one."""
    return [
        write_metrics(tmp_path, "pixel", 0.4, [0.3, None, 0.5]),
        write_metrics(tmp_path, "unet", 0.6, [0.5, None, 0.7]),
        write_metrics(tmp_path, "broken", None, [None, None, None]),
    ]


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


def test_leaderboard_keeps_its_columns_then_model_kind_and_per_class_iou(tmp_path, scored):
    out = tmp_path / "results" / "experiments.csv"
    tables.leaderboard(scored, out, model_kinds={"unet": "segmentation", "pixel": "pixel"})
    saved = pd.read_csv(out)
    assert list(saved.columns) == [
        "rank",
        "experiment",
        "device",
        "miou",
        "overall_accuracy",
        "macro_f1",
        "kl_divergence",
        "pixels",
        "model_kind",
        "iou_tree",
        "iou_built_up",
        "iou_water",
    ]
    assert list(saved["experiment"]) == ["unet", "pixel", "broken"]
    assert list(saved["iou_water"][:2]) == [0.7, 0.5]
    assert saved["iou_built_up"].isna().all()  # absent from the reference: NaN, not 0
    assert list(saved["model_kind"].fillna("")) == ["segmentation", "pixel", ""]


def test_first_page_table_ranks_runs_and_lists_every_class(tmp_path, scored):
    page = tmp_path / "results" / "leaderboard.rst"
    table = tables.leaderboard(
        scored,
        tmp_path / "results" / "experiments.csv",
        model_kinds={"unet": "segmentation", "pixel": "pixel"},
        page=page,
    )
    text = page.read_text()
    assert text == tables.leaderboard_page(table)
    # the same page from the CSV read back
    assert tables.leaderboard_page(pd.read_csv(tmp_path / "results" / "experiments.csv")) == text
    to_html(text)
    board, per_class = tables_of(text)
    assert board == [
        ["rank", "experiment", "device", "model", "mIoU", "overall accuracy"],
        ["1", "unet", "cpu", "segmentation", "0.600", "0.800"],  # best on top
        ["2", "pixel", "cpu", "pixel", "0.400", "0.600"],
        ["3", "broken", "cpu", "n/a", "n/a", "n/a"],
    ]
    # one row per class, none hidden (n/a: absent from the reference); runs in rank order
    assert per_class == [
        ["class", "unet / cpu", "pixel / cpu", "broken / cpu"],
        ["tree", "0.500", "0.300", "n/a"],
        ["built_up", "n/a", "n/a", "n/a"],
        ["water", "0.700", "0.500", "n/a"],
    ]


def test_first_page_without_experiments_says_so():
    assert "No experiment" in tables.leaderboard_page(pd.DataFrame())


# The report's first page: report/workflow.rst rendered as `snakemake --report` does (the
# workflow description in snakemake.report.auto_report: Jinja with the config and the
# registered files, then docutils; links to the categories and files appended).
LINKS = "\n\n.. _Experiments: javascript:void(0)\n.. _experiments.csv: javascript:void(0)\n"


def render_first_page(repo_root: Path, files: list, labels: str = "demo") -> str:
    config = {"areas": {"lakeside": {}, "delta": {}}, "holdout": ["delta"]}
    snakemake = types.SimpleNamespace(config={**config, "labels": {"kind": labels}})
    jinja2 = pytest.importorskip("jinja2")  # comes with Snakemake
    text = (repo_root / "report" / "workflow.rst").read_text() + LINKS
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return to_html(env.from_string(text).render(snakemake=snakemake, categories={}, files=files))


def registered(path: str) -> types.SimpleNamespace:
    """A file of the report as the template sees it (snakemake.report.FileRecord)."""
    return types.SimpleNamespace(target=Path(path).name, path=Path(path))


def test_report_first_page_shows_the_leaderboard(repo_root, tmp_path, scored, monkeypatch):
    tables.leaderboard(
        scored,
        tmp_path / "results" / "experiments.csv",
        model_kinds={"unet": "segmentation"},
        page=tmp_path / "results" / "leaderboard.rst",
    )
    monkeypatch.chdir(tmp_path)  # the report runs in the working directory
    html = render_first_page(repo_root, [registered("results/experiments.csv")])
    assert "lakeside, delta" in html and "held out for scoring: delta" in html
    assert "agreement with the reference labels" in html and "77 %" in html
    assert "best mIoU on top" in html and "IoU per class" in html
    assert html.index(">unet<") < html.index(">pixel<") < html.index(">broken<")
    assert "No leaderboard" not in html


@pytest.mark.parametrize(
    "files",
    [
        [],  # a report of another target, or made before the run
        [registered("results/experiments.csv")],  # a leaderboard of an older run
    ],
)
def test_report_first_page_without_the_leaderboard_says_so(repo_root, tmp_path, monkeypatch, files):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "experiments.csv").write_text("rank,experiment\n")
    monkeypatch.chdir(tmp_path)
    html = render_first_page(repo_root, files, labels="worldcover")
    assert "No leaderboard in this report yet" in html
    assert "agreement with the reference labels, not with the ground" in html
    assert "77 %" in html
