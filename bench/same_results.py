"""Show that a change of code changed no result: run the default workflow at two commits.

Each side is a git worktree of the repository (``--before`` and ``--after``, default the
commit before the package restructuring and ``HEAD``) under ``--work``, run with its own
default config and its own ``src/`` on ``PYTHONPATH`` (so each side imports its own
package). The side before is reused when it is there (its results too); the side after
is made anew each time (Snakemake would not rerun a job for a changed library module).
Compared:

- ``results/models/*/*/history.csv``: every column but times and memory;
- ``results/patches/class_weights.json``: equal;
- ``results/maps/*/*/*.tif`` (maps and confidence): equal pixel for pixel, same CRS,
  transform and nodata;
- ``results/eval/*/*/per_class_iou.csv``: equal value for value.

Prints one line per file and exits 1 if any differs.

    .venv/bin/python bench/same_results.py --work /tmp/same-results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "06d9344"  # the last commit before the package restructuring (issue 11)
TARGETS = ["maps", "per_class_iou"]
VOLATILE = ("epoch_seconds", "train_patches_per_s", "peak_memory_mb")


def worktree(ref: str, path: Path, fresh: bool) -> Path:
    """A worktree of ``ref`` at ``path``; ``fresh`` makes it anew (no results kept)."""
    if fresh and path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=True
        )
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True
        )
    return path


def run(tree: Path, cores: int) -> None:
    """Run the default workflow's maps and scores in ``tree`` with its own package."""
    env = os.environ | {"PYTHONPATH": str(tree / "src")}
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(snakemake), "--cores", str(cores), *TARGETS], cwd=tree, env=env, check=True)


def same_table(a: Path, b: Path, drop: tuple[str, ...] = ()) -> bool:
    """Equal CSV tables, value for value, without the ``drop`` columns."""
    left = pd.read_csv(a).drop(columns=list(drop), errors="ignore")
    right = pd.read_csv(b).drop(columns=list(drop), errors="ignore")
    return left.columns.equals(right.columns) and left.equals(right)


def same_raster(a: Path, b: Path) -> bool:
    """Equal pixels, CRS, transform, nodata and dtype."""
    with rasterio.open(a) as x, rasterio.open(b) as y:
        meta = (x.crs, x.transform, x.nodata, x.dtypes) == (y.crs, y.transform, y.nodata, y.dtypes)
        return meta and np.array_equal(x.read(), y.read())


def compare(before: Path, after: Path) -> bool:
    """Print one verdict per result file; True when all are the same."""
    checks = [
        (
            "results/patches/class_weights.json",
            lambda a, b: json.loads(a.read_text()) == json.loads(b.read_text()),
        ),
    ]
    for pattern, check in (
        ("results/models/*/*/history.csv", lambda a, b: same_table(a, b, VOLATILE)),
        ("results/maps/*/*/*.tif", same_raster),
        ("results/eval/*/*/per_class_iou.csv", same_table),
    ):
        checks += [(str(p.relative_to(before)), check) for p in sorted(before.glob(pattern))]
    ok = bool(checks)
    for rel, check in checks:
        same = (after / rel).exists() and check(before / rel, after / rel)
        ok &= same
        print(f"{'same' if same else 'DIFFERENT'}  {rel}")
    return ok


def main() -> int:
    """Run both sides (what is not up to date) and compare them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="commit before the change")
    parser.add_argument("--after", default="HEAD", help="commit after the change")
    parser.add_argument("--work", type=Path, required=True, help="folder for both worktrees")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    # the side before is reused when it is there (a fixed commit); the side after is
    # always made anew, since Snakemake does not rerun a job for a changed library module
    sides = [
        worktree(args.before, args.work / "before", fresh=False),
        worktree(args.after, args.work / "after", fresh=True),
    ]
    for tree in sides:
        run(tree, args.cores)
    ok = compare(*sides)
    print("no result changed" if ok else "results differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
