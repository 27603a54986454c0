"""Domain errors: each names what is wrong (area, file or key) and how to fix it."""

from __future__ import annotations

import errno
import re

_DOUBLE_STOP = re.compile(r"(?<![./\d\s])\.\.(?=\s|$)")
"""A sentence's full stop doubled, as when a quoted message that ends in one is followed by
another (``f"{gdal_message}. Fix: ..."``); ranges (``0..255``), ``...`` and ``../`` paths
are left alone."""


def tidy(message: str) -> str:
    """A message with doubled full stops (``format.. Fix``) made single."""
    return _DOUBLE_STOP.sub(".", message)


class LandcoverError(Exception):
    """Base class of the errors this package raises on bad input."""

    def __init__(self, *args: object) -> None:
        """Keep the arguments, the message with :func:`tidy` applied."""
        if args and isinstance(args[0], str):
            args = (tidy(args[0]), *args[1:])
        super().__init__(*args)


class ConfigError(LandcoverError, ValueError):
    """The configuration is invalid; the message names the key and the fix."""


class DataError(LandcoverError, ValueError):
    """Input data is unusable; the message names the area or file and the fix."""


class SourceError(LandcoverError, OSError):
    """A data source cannot be read; the message names the URL or path."""


class WriteError(LandcoverError, OSError):
    """A file could not be written whole; the message names it, nothing is left of it."""


class DiskFullError(WriteError):
    """The disk filled during a write; the message names the file, the mount and the fix."""

    def __init__(self, message: str) -> None:
        """An error with ``message`` and errno ENOSPC."""
        super().__init__(message)
        # errno alone (no strerror/filename), so that str() stays the message
        self.errno = errno.ENOSPC
