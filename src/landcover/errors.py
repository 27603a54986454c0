"""Domain errors: each names what is wrong (area, file or key) and how to fix it."""


class LandcoverError(Exception):
    """Base class of the errors this package raises on bad input."""


class ConfigError(LandcoverError, ValueError):
    """The configuration is invalid; the message names the key and the fix."""


class DataError(LandcoverError, ValueError):
    """Input data is unusable; the message names the area or file and the fix."""


class SourceError(LandcoverError, OSError):
    """A data source cannot be read; the message names the URL or path."""
