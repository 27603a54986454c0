"""Process set-up shared by the workflow's scripts."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from types import TracebackType


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

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        logging.getLogger("landcover").error("failed", exc_info=(kind, value, tb))

    sys.excepthook = excepthook
