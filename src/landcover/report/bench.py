"""Tables and figures of the benchmarks: the device table and the run-time table.

``devices.csv`` joins the per-engine tables of ``landcover.models.segmentation.bench``
(one Snakemake job per engine) with speed-ups and parallel efficiency; two figures show
the device ladder and the CPU strong scaling. The run-time table gathers the files that Snakemake's
``benchmark:`` directive writes (``benchmarks/<rule>/<wildcards>.tsv``) into one table
of seconds and peak memory per rule and wildcards, and a figure of the longest jobs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from landcover.errors import DataError
from landcover.io import atomic_path, read_table

MODES = ("train", "infer")
"""Modes of the device table, in display order (``landcover.models.segmentation.bench.MODES``)."""

RUNTIME_COLUMNS = (
    "rule",
    "wildcards",
    "seconds",
    "max_rss_mb",
    "max_uss_mb",
    "cpu_seconds",
    "mean_load",
    "io_in_mb",
    "io_out_mb",
    "repeats",
    "file",
)
"""Columns of the run-time table (``results/runtime/runtimes.csv``)."""
# ------------------------------------------------------------------------- summaries


def scaling(devices: pd.DataFrame) -> pd.DataFrame:
    """Add ``speedup`` and ``parallel_efficiency`` of each row against ``cpu1``.

    ``speedup`` is the row's median patches/s over that of one CPU thread in the same
    mode (every engine gets one, so GPUs read as "N times one core");
    ``parallel_efficiency`` is ``speedup / threads`` for CPU rows (1.0 = perfect strong
    scaling) and empty for other devices. Both are empty without a ``cpu1`` row.
    """
    out = devices.copy()
    base = out[out["engine"] == "cpu1"].set_index("mode")["patches_per_s"]
    out["speedup"] = out["patches_per_s"] / out["mode"].map(base)
    cpu = out["device"] == "cpu"
    out["parallel_efficiency"] = np.where(cpu, out["speedup"] / out["threads"], np.nan)
    return out


def engine_order(devices: pd.DataFrame) -> list[str]:
    """Engine names of a device table, CPUs by threads first, then CUDA devices by index."""
    engines = devices.drop_duplicates("engine")
    index = engines.get("device_index", pd.Series(np.nan, index=engines.index))
    keys = [
        (device != "cpu", threads if device == "cpu" else (0 if pd.isna(i) else i), name)
        for name, device, threads, i in zip(
            engines["engine"], engines["device"], engines["threads"], index, strict=True
        )
    ]
    return [key[-1] for key in sorted(keys)]


def summarise_engines(tables: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Join the per-engine tables into ``devices.csv`` with speed-ups and efficiency.

    Args:
        tables: CSVs written by :func:`write_engine_table`.
        out: the joined table (rows ordered CPU 1..N threads, then CUDA devices;
            train before infer).

    Raises:
        DataError: a table is missing, unreadable or lacks columns.

    """
    frames = [
        read_table(
            path, "engine benchmark", ["engine", "device", "threads", "mode", "patches_per_s"]
        )
        for path in tables
    ]
    if not frames:
        raise DataError("No engine benchmark to summarise: `bench.engines` lists none.")
    devices = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(engine_order(devices))}
    devices = devices.sort_values(
        ["engine", "mode"],
        key=lambda col: col.map(order) if col.name == "engine" else col.map(MODES.index),
        kind="stable",
    ).reset_index(drop=True)
    devices = scaling(devices)
    with atomic_path(out) as tmp:
        devices.to_csv(tmp, index=False)
    return devices


# --------------------------------------------------------------------------- figures


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | Path, dpi: int) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _subtitle(devices: pd.DataFrame) -> str:
    first = devices.iloc[0]
    return (
        f"{first['arch']}/{first['encoder']}, {first['patch_size']} px x {first['bands']} "
        f"bands, batch {first['batch_size']}; CPU: {first['cpu_model']}"
    )


def plot_device_ladder(
    devices: str | Path, out: str | Path, size: tuple[float, float] = (8.0, 4.5), dpi: int = 100
) -> None:
    """Draw the device ladder: patches/s per engine, training and inference, log scale.

    Bars show the median, whiskers the min and max of the timed steps; GPUs are
    labelled with their name and precision.

    Args:
        devices: ``devices.csv`` (:func:`summarise_engines`).
        out: PNG path.
        size: figure size in inches.
        dpi: dots per inch.

    """
    frame = read_table(
        devices,
        "device benchmark table",
        [
            "engine",
            "device",
            "threads",
            "mode",
            "patches_per_s",
            "patches_per_s_min",
            "patches_per_s_max",
        ],
    )
    engines = engine_order(frame)
    labels = []
    for engine in engines:
        row = frame[frame["engine"] == engine].iloc[0]
        if row["device"] == "cpu":
            threads = int(row["threads"])
            labels.append(f"CPU, {threads} thread{'s' if threads > 1 else ''}")
        else:
            labels.append(f"{engine}: {row['gpu_name']} ({row['precision']})")
    fig = _figure(size)
    ax = fig.subplots()
    y = np.arange(len(engines))
    height = 0.38
    for offset, mode, colour in (
        (-height / 2, "train", "#4c72b0"),
        (height / 2, "infer", "#dd8452"),
    ):
        rows = frame[frame["mode"] == mode].set_index("engine").reindex(engines)
        value = rows["patches_per_s"].to_numpy(float)
        err = np.vstack(
            [
                value - rows["patches_per_s_min"].to_numpy(float),
                rows["patches_per_s_max"].to_numpy(float) - value,
            ]
        )
        ax.barh(
            y + offset,
            value,
            height,
            xerr=err,
            color=colour,
            capsize=2,
            label="training" if mode == "train" else "inference",
        )
        right = rows["patches_per_s_max"].to_numpy(float)
        for yi, v, r in zip(y + offset, value, right, strict=True):
            if np.isfinite(v):
                ax.text(
                    r * 1.15, yi, f"{v:.3g}" if v < 1000 else f"{v:,.0f}", va="center", fontsize=7
                )
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("patches per second (log scale; median, whiskers min-max)")
    finite = frame["patches_per_s_max"].to_numpy(float)
    ax.set_xlim(right=float(np.nanmax(finite)) * 4)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"Device ladder\n{_subtitle(frame)}", fontsize=9)
    fig.subplots_adjust(left=0.3, right=0.84, top=0.86, bottom=0.13)
    _save(fig, out, dpi)


def plot_cpu_scaling(
    devices: str | Path, out: str | Path, size: tuple[float, float] = (9.0, 4.0), dpi: int = 100
) -> None:
    """Draw CPU strong scaling: throughput and parallel efficiency against threads.

    The left panel shows patches/s of training and inference per thread count with the
    ideal line (one thread's throughput times the threads); the right panel the
    parallel efficiency (1 = ideal).

    Args:
        devices: ``devices.csv`` (:func:`summarise_engines`).
        out: PNG path.
        size: figure size in inches.
        dpi: dots per inch.

    """
    frame = read_table(
        devices, "device benchmark table", ["engine", "device", "threads", "mode", "patches_per_s"]
    )
    cpu = scaling(frame)
    cpu = cpu[cpu["device"] == "cpu"].sort_values("threads")
    if cpu.empty:
        raise DataError(f"'{devices}' holds no CPU engine; add cpu<N> to `bench.engines`.")
    fig = _figure(size)
    rate_ax, eff_ax = fig.subplots(1, 2)
    threads = sorted(cpu["threads"].unique())
    for mode, colour in (("train", "#4c72b0"), ("infer", "#dd8452")):
        rows = cpu[cpu["mode"] == mode]
        name = "training" if mode == "train" else "inference"
        rate_ax.plot(rows["threads"], rows["patches_per_s"], "o-", color=colour, label=name)
        one = rows.loc[rows["threads"] == 1, "patches_per_s"]
        if not one.empty:
            rate_ax.plot(
                threads,
                [float(one.iloc[0]) * t for t in threads],
                ":",
                color=colour,
                label=f"{name}, ideal",
            )
        eff_ax.plot(rows["threads"], rows["parallel_efficiency"], "o-", color=colour, label=name)
    for ax in (rate_ax, eff_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads, [str(t) for t in threads])
        ax.set_xlabel("torch threads")
        ax.grid(alpha=0.3)
    rate_ax.set_ylabel("patches per second")
    rate_ax.legend(fontsize=7)
    eff_ax.axhline(1.0, color="grey", lw=0.8)
    eff_ax.set_ylim(0, max(1.1, float(np.nanmax(cpu["parallel_efficiency"], initial=0)) * 1.1))
    eff_ax.set_ylabel("parallel efficiency (speed-up / threads)")
    fig.suptitle(f"CPU strong scaling\n{_subtitle(cpu)}", fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.82, bottom=0.14, wspace=0.3)
    _save(fig, out, dpi)


# ------------------------------------------------------------------------ run times


def benchmark_job(path: str | Path, root: str | Path) -> tuple[str, str]:
    """Rule and wildcards of a benchmark file named after the workflow's convention.

    ``benchmarks/<rule>/<w1>/<w2>.tsv`` -> ``("<rule>", "<w1>/<w2>")``;
    ``benchmarks/<rule>.tsv`` -> ``("<rule>", "")``.
    """
    parts = Path(path).relative_to(root).with_suffix("").parts
    return parts[0], "/".join(parts[1:])


def read_benchmark(path: str | Path, root: str | Path) -> dict[str, Any]:
    """Summarise one Snakemake benchmark TSV as one row of the run-time table.

    Repeated measurements (``repeat("...", n)``) are averaged (seconds) or maxed
    (memory). Memory columns are MB as Snakemake writes them. Files written with
    ``--benchmark-extended`` name their rule and wildcards; others are named by path.

    Raises:
        DataError: the file is unreadable or has no ``s`` column.

    """
    frame = _read_table_tsv(path)
    rule, wildcards = benchmark_job(path, root)
    if "rule_name" in frame.columns and pd.notna(frame["rule_name"].iloc[0]):
        rule = str(frame["rule_name"].iloc[0])

    def column(name: str, how: str) -> float:
        if name not in frame.columns:
            return math.nan
        values = pd.to_numeric(frame[name], errors="coerce")
        return float(values.max() if how == "max" else values.mean())

    return {
        "rule": rule,
        "wildcards": wildcards,
        "seconds": column("s", "mean"),
        "max_rss_mb": column("max_rss", "max"),
        "max_uss_mb": column("max_uss", "max"),
        "cpu_seconds": column("cpu_time", "mean"),
        "mean_load": column("mean_load", "mean"),
        "io_in_mb": column("io_in", "mean"),
        "io_out_mb": column("io_out", "mean"),
        "repeats": len(frame),
        "file": Path(path).relative_to(root).as_posix(),
    }


def _read_table_tsv(path: str | Path) -> pd.DataFrame:
    fix = "delete it and rerun its job"
    frame = read_table(path, "benchmark file", fix=fix, sep="\t")
    if "s" not in frame.columns or frame.empty:
        raise DataError(
            f"'{path}' is not a Snakemake benchmark file (no 's' column or no row); {fix}."
        )
    return frame


def collect_runtimes(benchmarks: str | Path, out: str | Path) -> pd.DataFrame:
    """Gather every ``*.tsv`` under ``benchmarks`` into the run-time table.

    Args:
        benchmarks: the run's ``benchmarks/`` folder.
        out: CSV with :data:`RUNTIME_COLUMNS`, longest job first.

    Raises:
        DataError: no benchmark file, or an unreadable one (named).

    """
    root = Path(benchmarks)
    paths = sorted(root.rglob("*.tsv"))
    if not paths:
        raise DataError(
            f"No benchmark file under '{root}': run the workflow first (every rule "
            "declares `benchmark:`), then ask for the run-time table."
        )
    table = pd.DataFrame([read_benchmark(p, root) for p in paths], columns=list(RUNTIME_COLUMNS))
    table = table.sort_values(["seconds", "rule", "wildcards"], ascending=[False, True, True])
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4g")
    return table


def plot_runtimes(
    runtimes: str | Path,
    out: str | Path,
    top: int = 40,
    dpi: int = 100,
) -> None:
    """Draw seconds and peak memory (max RSS) of the longest jobs of a run.

    Args:
        runtimes: the run-time table (:func:`collect_runtimes`).
        out: PNG path.
        top: at most this many jobs, the longest; the title says how many were left out.
        dpi: dots per inch.

    """
    table = read_table(runtimes, "run-time table", ["rule", "wildcards", "seconds", "max_rss_mb"])
    table = table.sort_values("seconds", ascending=False, kind="stable")
    shown = table.head(top)
    labels = [
        f"{r}: {w}" if isinstance(w, str) and w else str(r)
        for r, w in zip(shown["rule"], shown["wildcards"], strict=True)
    ]
    fig = _figure((10.0, 1.5 + 0.22 * len(shown)))
    time_ax, mem_ax = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(shown))
    time_ax.barh(y, shown["seconds"].to_numpy(float), color="#4c72b0")
    mem_ax.barh(y, shown["max_rss_mb"].to_numpy(float), color="#55a868")
    time_ax.set_yticks(y, labels, fontsize=7)
    time_ax.invert_yaxis()
    time_ax.set_xlabel("wall-clock seconds")
    mem_ax.set_xlabel("peak memory (max RSS, MB)")
    left_out = len(table) - len(shown)
    total = float(table["seconds"].sum())
    fig.suptitle(
        f"Run time per job: {len(table)} jobs, {total:.0f} s in all"
        + (f" ({left_out} shortest not shown)" if left_out else ""),
        fontsize=9,
    )
    fig.subplots_adjust(
        left=0.3,
        right=0.98,
        top=1 - 0.6 / fig.get_figheight(),
        bottom=0.55 / fig.get_figheight(),
        wspace=0.08,
    )
    _save(fig, out, dpi)
