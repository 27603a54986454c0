"""Process set-up shared by the workflow's scripts."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from types import TracebackType

from landcover.io import quiet_pixel_grids


def configure_logging(log_path: str | Path, level: int = logging.INFO) -> None:
    """Send logging, warnings and uncaught tracebacks into a rule's log file.

    Args:
        log_path: the rule's ``log`` file; its folder is created.
        level: the root logger's level.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # append: a job resumed after a crash keeps the log of its first attempt
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(level)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    quiet_pixel_grids()  # after the reset above

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        # the traceback goes to the log file only, and the console gets one line:
        # Snakemake prints a failed job's log (show-failed-logs), so the traceback
        # shows once, not once from stderr and again from the log
        record = logging.LogRecord("landcover", logging.ERROR, "", 0, "failed", None, None)
        record.exc_info = (kind, value, tb)
        handler.handle(record)
        print(f"{kind.__name__}: {value} (traceback in {path})", file=sys.stderr)

    sys.excepthook = excepthook


TRIM_THRESHOLD = 2**30
"""Free memory at the heap's top kept for reuse before glibc returns it to the system."""

MALLOC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
"""glibc's own tunables: when the user sets one, :func:`tune_malloc` leaves malloc alone."""


def tune_malloc() -> bool:
    """Serve every block from glibc's heap and keep freed memory for reuse.

    By default glibc serves blocks above a threshold (at most 32 MiB) with a fresh
    ``mmap`` and returns freed memory at the heap's top to the system, so every forward
    pass of a CPU model maps, zero-fills and unmaps its large activations again. With
    ``M_MMAP_MAX`` = 0 and a 1 GiB ``M_TRIM_THRESHOLD`` the same buffers are reused:
    ``bench/map_efficiency.py`` run plain and with ``LANDCOVER_TUNE_MALLOC=0`` shows the
    gain (figures in docs/benchmarks.md), and its memory runs the peak. PyTorch's CPU tuning
    guide reaches this with jemalloc or tcmalloc through ``LD_PRELOAD``; mallopt needs
    no extra library. Only the calling process is affected (the settings are global to
    it). Malloc is left alone when ``LANDCOVER_TUNE_MALLOC=0`` or when the user sets one
    of :data:`MALLOC_ENV` (glibc's own settings win).

    Returns:
        True when the settings were applied (glibc), False elsewhere (macOS, musl).

    """
    import ctypes
    import os

    if os.environ.get("LANDCOVER_TUNE_MALLOC") == "0" or any(k in os.environ for k in MALLOC_ENV):
        return False
    if sys.platform != "linux":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    tuned = bool(mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, TRIM_THRESHOLD))
    if tuned:
        logging.getLogger("landcover").info("glibc malloc set to reuse freed tensor memory")
    return tuned
