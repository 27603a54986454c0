#!/usr/bin/env sh
# Set up the project's environment (.venv) if needed, then run the workflow or the tests.
#   ./bootstrap.sh run [snakemake args]   set up, then run the default workflow (all cores)
#   ./bootstrap.sh test [pytest args]     set up, then run the test suite
#   ./bootstrap.sh setup                  set up only
# Needs only Python >= 3.10 with venv and pip. torch/torchvision come from the package
# index (CUDA builds: they run on CPU too; ~5 GB on first setup).
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv

stamp() { cat pyproject.toml | cksum | cut -d' ' -f1; }

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.landcover-setup" 2>/dev/null)" != "$(stamp)" ]; then
    echo "Setting up $VENV (first time: downloads torch, several minutes)..."
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[all,test]"
    stamp > "$VENV/.landcover-setup"
fi

command=${1:-setup}
[ $# -gt 0 ] && shift
case "$command" in
    run) exec "$VENV/bin/snakemake" --cores all "$@" ;;
    test) exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) echo "Ready: activate with '. $VENV/bin/activate', then run 'snakemake --cores 8'." ;;
    *) echo "usage: $0 run|test|setup [args]" >&2; exit 2 ;;
esac
