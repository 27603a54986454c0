#!/usr/bin/env bash
# GPU check (issue 16): run the workflow's CUDA paths once and write a short report.
#
# On a machine with CUDA (nvidia-smi lists a GPU and torch sees it) it runs, each step
# under `timeout` so that the whole check ends within 10 minutes:
#   1. the tiny workflow (three small demo areas, a 2 M-parameter U-Net, 2 epochs) with
#      `--profile gpu`: data, training and maps on CUDA, held-out scores;
#   2. `snakemake bench` on cuda0 in fp32, bf16 and fp16, channels-last (the config's
#      model: unet/resnet18, 64 px patches);
#   3. with 2 GPUs or more, the tiny model trained again by DistributedDataParallel over
#      2 processes (NCCL);
# then writes report.md (and each step's log) to the output folder.
# On a machine without CUDA it prints "gpu_check needs CUDA: ..." and exits 0, doing
# nothing else.
#
# Usage (from anywhere; the repository is the folder above this script):
#   bench/gpu_check.sh [OUTPUT_DIR]      # default: results/gpu_check in the repository
# Environment: PYTHON (default .venv/bin/python of the repository, else python3).
# Exit status: 0 when every step passed (or without CUDA), 1 when a step failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/results/gpu_check}")"
if [[ -z "${PYTHON:-}" && -x "$ROOT/.venv/bin/python" ]]; then
    PYTHON="$ROOT/.venv/bin/python"
fi
PYTHON="${PYTHON:-python3}"
SNAKEMAKE="$(dirname "$(command -v "$PYTHON")")/snakemake"
[[ -x "$SNAKEMAKE" ]] || SNAKEMAKE="snakemake"

# Seconds per step: together under 10 minutes.
WORKFLOW_S=260
BENCH_S=75
DDP_S=90

needs_cuda() {
    echo "gpu_check needs CUDA: $1; nothing was run."
    exit 0
}

if ! command -v nvidia-smi >/dev/null 2>&1; then
    needs_cuda "nvidia-smi is not installed (no NVIDIA driver)"
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
    needs_cuda "nvidia-smi lists no GPU"
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    >/dev/null 2>&1; then
    needs_cuda "torch ($PYTHON) sees no CUDA device (CPU-only build or CUDA_VISIBLE_DEVICES)"
fi

GPUS="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
: >"$OUT/steps.tsv"
FAILED=0

# keep FILE DEST: copy a step's output into the report folder when the step made it.
keep() {
    if [[ -f "$1" ]]; then
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2"
    fi
}

# config FOLDER JSON: the demo config with the JSON's top-level sections replaced.
config() {
    mkdir -p "$1"
    "$PYTHON" - "$ROOT/config/config.yaml" "$1/config.yaml" "$2" <<'EOF'
import json
import sys

import yaml

config = yaml.safe_load(open(sys.argv[1]))
config.update(json.loads(sys.argv[3]))
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(config, f)
EOF
}

# step NAME SECONDS FOLDER TARGET... [-- OPTION...]: Snakemake on FOLDER's config;
# logged, timed, recorded. The targets come first: --configfile, --forcerun, --resources
# and --set-resources take every word after them up to the next option.
step() {
    local name="$1" seconds="$2" folder="$3" status=0 start
    shift 3
    local targets=() options=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do
        targets+=("$1")
        shift
    done
    [[ $# -gt 0 ]] && shift
    options=("$@")
    echo "gpu_check: $name (at most $seconds s)"
    start="$(date +%s)"
    timeout --kill-after=10 "$seconds" "$SNAKEMAKE" --snakefile "$ROOT/Snakefile" \
        --directory "$folder" "${targets[@]}" --profile "$ROOT/profiles/gpu" "${options[@]}" \
        --configfile "$folder/config.yaml" >"$OUT/$name.log" 2>&1 || status=$?
    printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - start))" >>"$OUT/steps.tsv"
    if [[ "$status" -ne 0 ]]; then
        FAILED=1
        echo "gpu_check: $name failed (exit $status, 124 = timed out): $OUT/$name.log"
    fi
}

# The tiny workflow of tests/conftest.py (TINY), the network only.
TINY='{
  "areas": {
    "lakeside": {"bbox": [-15.90, 16.10, -15.888, 16.112], "landscape": "lake"},
    "city": {"bbox": [-17.47, 14.68, -17.458, 14.692], "landscape": "city"},
    "delta": {"bbox": [-16.52, 14.994, -16.508, 15.006], "landscape": "delta"}
  },
  "holdout": ["delta"],
  "imagery": {"max_cloud": 90, "max_items": 2, "bands": ["B02", "B03", "B04", "B08", "B11"]},
  "demo": {"n_dates": 2},
  "ignore_codes": [70, 100],
  "patches": {"size": 32, "stride": 32, "min_valid": 0.3},
  "split": {"method": "areas+blocks", "block_size": 64, "buffer": 8, "val_fraction": 0.3},
  "model": {"arch": "unet", "encoder": "tu-mobilenetv3_small_050"},
  "experiments": {"unet": {}},
  "training": {"epochs": 2, "batch_size": 4, "patience": 0},
  "predict": {"window": 64, "overlap": 16, "batch_size": 4}
}'
config "$WORK/tiny" "$TINY"
step workflow "$WORKFLOW_S" "$WORK/tiny" per_class_iou -- --cores all
for file in models/unet/cuda/hardware.json models/unet/cuda/history.csv \
    eval/unet/cuda/metrics.json; do
    keep "$WORK/tiny/results/$file" "$OUT/workflow/$(basename "$file")"
done

for precision in fp32 bf16 fp16; do
    config "$WORK/bench-$precision" \
        "{\"bench\": {\"engines\": [\"cuda0\"]},
          \"training\": {\"precision\": \"$precision\", \"channels_last\": true}}"
    step "bench-$precision" "$BENCH_S" "$WORK/bench-$precision" bench -- --cores all
    keep "$WORK/bench-$precision/results/bench/devices.csv" "$OUT/bench-$precision.csv"
done

if [[ "$GPUS" -ge 2 ]]; then
    # the same tiny run's model again, over 2 processes (its data is already there)
    step ddp "$DDP_S" "$WORK/tiny" results/models/unet/cuda/hardware.json -- \
        --cores all --forcerun train_model --set-resources train_model:gpu=2 --resources gpu=2
    for file in hardware.json history.csv; do
        keep "$WORK/tiny/results/models/unet/cuda/$file" "$OUT/ddp/$file"
    done
else
    printf 'ddp\tskipped (%s GPU)\t0\n' "$GPUS" >>"$OUT/steps.tsv"
fi

# a failing report is a failed check, but the steps' logs stay in the output folder
"$PYTHON" - "$OUT" <<'EOF' || FAILED=1
"""Write report.md from the copied outputs of the steps."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

out = Path(sys.argv[1])
gpus = subprocess.run(
    ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
    capture_output=True, text=True, check=False,
).stdout.strip().splitlines()
lines = [
    "# GPU check", "",
    f"GPUs: {'; '.join(gpus)}. torch {torch.__version__}, CUDA {torch.version.cuda}, "
    f"cuDNN {torch.backends.cudnn.version()}.", "",
    "| step | exit status (124: timed out) | seconds |", "|---|---|---|",
]
for row in (out / "steps.tsv").read_text().splitlines():
    lines.append("| " + " | ".join(row.split("\t")) + " |")


def model_lines(folder: Path, title: str) -> list[str]:
    """Precision, world size, last epoch's rate and memory, held-out mIoU of one run."""
    if not (folder / "hardware.json").exists():
        return [f"{title}: no hardware.json (the step failed).", ""]
    hardware = json.loads((folder / "hardware.json").read_text())
    last = pd.read_csv(folder / "history.csv").iloc[-1]
    text = (
        f"{title}: device {hardware.get('device_name', hardware.get('device'))}, precision "
        f"{hardware.get('precision')}, {hardware.get('world_size', 1)} process(es); last "
        f"epoch {last['train_patches_per_s']:.1f} train patches/s, peak GPU memory "
        f"{last['peak_memory_mb']:.0f} MB, val mIoU {last['val_miou']:.3f}"
    )
    if (folder / "metrics.json").exists():
        text += f"; held-out mIoU {json.loads((folder / 'metrics.json').read_text())['miou']:.3f}"
    return [text + ".", ""]


lines += ["", "## Tiny workflow (`--profile gpu`)", ""]
lines += model_lines(out / "workflow", "unet/tu-mobilenetv3_small_050, 2 epochs")
lines += ["## `snakemake bench` on cuda0, channels-last", ""]
tables = [pd.read_csv(p) for p in sorted(out.glob("bench-*.csv"))]
if tables:
    bench = pd.concat(tables)
    wanted = ["engine", "precision", "mode", "patches_per_s", "patches_per_s_min",
              "patches_per_s_max", "batch_size", "arch", "encoder"]
    columns = [c for c in wanted if c in bench.columns]
    lines += [bench[columns].to_markdown(index=False, floatfmt=".1f"), ""]
else:
    lines += ["No bench table (every bench step failed).", ""]
if (out / "ddp").exists():
    lines += ["## DistributedDataParallel, 2 processes", ""]
    lines += model_lines(out / "ddp", "the tiny model again")
(out / "report.md").write_text("\n".join(lines) + "\n")
print(f"gpu_check: report {out / 'report.md'}")
EOF
exit "$FAILED"
