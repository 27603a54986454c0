"""HTTP access to remote sources: settings, retries, GDAL options and reads that name the URL.

Remote files (``http(s)://``) are read through GDAL's ``/vsicurl/``, which fetches only
the COG tiles a window needs, with the settings of :func:`gdal_options`; STAC API
searches go through pystac-client with the same retries (:func:`http_retry`). Remote
failures are never silent: a failure that outlasts the retries raises a
:class:`~landcover.errors.SourceError` that names the URL.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from rasterio.errors import RasterioError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from landcover.errors import ConfigError, DataError, SourceError

logger = logging.getLogger(__name__)


T = TypeVar("T")


REOPEN_ATTEMPTS = 3
"""Times a remote file is opened and read before giving up. GDAL retries HTTP 429/5xx
and timeouts itself (``GDAL_HTTP_MAX_RETRY``) but not a connection dropped without an
answer, nor a transfer cut short; those are retried here by opening the file again."""


RETRY_STATUS = (429, 500, 502, 503, 504)
"""HTTP statuses retried by the STAC client and the existence probe (as GDAL does)."""


@dataclass(frozen=True)
class HttpSettings:
    """Retries and timeouts of every remote read: GDAL's ``/vsicurl/`` and the STAC client.

    They are read from GDAL's own environment variables (:meth:`from_env`), so that one
    setting drives both GDAL and the STAC client, and a user who knows GDAL finds them.

    Attributes:
        max_retry: retries of a failed request (HTTP 429/5xx, timeouts, dropped or
            reset connections), ``GDAL_HTTP_MAX_RETRY``.
        retry_delay: seconds before the first retry, doubled at each following one,
            ``GDAL_HTTP_RETRY_DELAY``.
        timeout: seconds one request may take, ``GDAL_HTTP_TIMEOUT``.
        connect_timeout: seconds to establish a connection, ``GDAL_HTTP_CONNECTTIMEOUT``.

    """

    max_retry: int = 5
    retry_delay: float = 1.0
    timeout: float = 120.0
    connect_timeout: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        """Read the settings from the environment, with the class defaults for unset ones.

        Raises:
            ConfigError: when a variable is set but not a number.

        """
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            value = env.get(name, "")
            if not value.strip():
                return default
            try:
                return float(value)
            except ValueError as err:
                raise ConfigError(
                    f"Environment variable {name}={value!r} is not a number; unset it or set "
                    f"a number (default {default:g}, see docs/sources.md)."
                ) from err

        return cls(
            max_retry=max(int(number("GDAL_HTTP_MAX_RETRY", cls.max_retry)), 0),
            retry_delay=max(number("GDAL_HTTP_RETRY_DELAY", cls.retry_delay), 0.0),
            timeout=number("GDAL_HTTP_TIMEOUT", cls.timeout),
            connect_timeout=number("GDAL_HTTP_CONNECTTIMEOUT", cls.connect_timeout),
        )


def gdal_options(
    settings: HttpSettings | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """GDAL configuration options for windowed reads of remote COGs.

    * ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: a remote file is opened without
      listing its "directory" (S3 listings are slow and useless here);
    * ``GDAL_HTTP_MULTIRANGE=YES``, ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES``: the COG
      tiles of a window are fetched in parallel range requests, neighbouring ones merged;
    * ``VSI_CACHE=TRUE``: blocks read once are kept per open file;
    * ``CPL_VSIL_CURL_NON_CACHED=/vsicurl/``: GDAL does not remember a failed request
      (or a file's size) from one open to the next, so a file opened again after a
      dropped connection is really asked for again;
    * ``GDAL_HTTP_MAX_RETRY``, ``GDAL_HTTP_RETRY_DELAY`` (GDAL doubles it at each retry),
      ``GDAL_HTTP_TIMEOUT``, ``GDAL_HTTP_CONNECTTIMEOUT`` from :class:`HttpSettings`.

    Each option set in the environment wins over the value here. Harmless for local files.

    Args:
        settings: retries and timeouts (default: :meth:`HttpSettings.from_env`).
        environ: the environment (default: ``os.environ``).

    """
    env = os.environ if environ is None else environ
    settings = settings or HttpSettings.from_env(env)
    options = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "VSI_CACHE": "TRUE",
        "CPL_VSIL_CURL_NON_CACHED": "/vsicurl/",
        "GDAL_HTTP_MAX_RETRY": str(settings.max_retry),
        "GDAL_HTTP_RETRY_DELAY": f"{settings.retry_delay:g}",
        # GDAL takes whole seconds here
        "GDAL_HTTP_TIMEOUT": str(max(math.ceil(settings.timeout), 1)),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(math.ceil(settings.connect_timeout), 1)),
    }
    return {name: env.get(name, value) for name, value in options.items()}


def http_retry(settings: HttpSettings, raise_on_status: bool = True) -> Retry:
    """The urllib3 retry policy of the STAC client and the existence probe.

    Retries connection errors, dropped connections and HTTP 429/5xx, for every method
    (a STAC search POST is read-only), with exponential backoff from
    ``settings.retry_delay`` and the server's ``Retry-After`` respected.
    """
    return Retry(
        total=settings.max_retry,
        connect=settings.max_retry,
        read=settings.max_retry,
        status=settings.max_retry,
        other=settings.max_retry,
        backoff_factor=settings.retry_delay,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,
        raise_on_status=raise_on_status,
        respect_retry_after_header=True,
    )


def http_session(settings: HttpSettings) -> requests.Session:
    """A requests session that retries as :func:`http_retry` says."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=http_retry(settings, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def network_fix(settings: HttpSettings) -> str:
    """The fix a network failure's message ends with (retries tried, what to check)."""
    return (
        f"(tried with {settings.max_retry} HTTP retries). Fix: check the network connection "
        "and the URL (labels.root / imagery.root), then rerun: the job can simply be run "
        "again. Retries and timeouts: GDAL_HTTP_MAX_RETRY, GDAL_HTTP_RETRY_DELAY, "
        "GDAL_HTTP_TIMEOUT (see docs/sources.md)."
    )


def _http_request(
    url: str, what: str, settings: HttpSettings, method: str, **kwargs: Any
) -> requests.Response:
    """Send one request with the retries of :func:`http_retry`; return the last answer.

    Raises:
        SourceError: naming the URL when no answer comes (connection refused, dropped,
            timed out) after the retries.

    """
    timeout = (settings.connect_timeout, settings.timeout)
    try:
        with http_session(settings) as session:
            response = session.request(method, url, timeout=timeout, **kwargs)
            response.close()
            return response
    except requests.RequestException as err:
        raise SourceError(f"Cannot reach {what} at {url}: {err} {network_fix(settings)}") from err


def _status_error(what: str, url: str, response: requests.Response, settings: HttpSettings) -> str:
    return (
        f"{what} at {url} answered HTTP {response.status_code} {response.reason} "
        f"{network_fix(settings)}"
    )


def remote_exists(url: str, what: str, settings: HttpSettings) -> bool:
    """Whether a remote file exists: True on 2xx, False only on HTTP 404.

    Asked with a HEAD request, retried on connection errors and HTTP 429/5xx.

    Raises:
        SourceError: naming the URL when the server stays unreachable or answers
            anything else than 2xx or 404 (e.g. 403 or 503 after the retries).

    """
    response = _http_request(url, what, settings, "HEAD", allow_redirects=True)
    if response.status_code == 404:
        return False
    if response.ok:
        return True
    raise SourceError(_status_error(what, url, response, settings))


def check_remote_readable(url: str, what: str, settings: HttpSettings) -> None:
    """Fetch the first KiB of a remote file, as GDAL would, retrying transient failures.

    Used after GDAL failed on a URL, to tell a failing server from a corrupt file.

    Raises:
        SourceError: naming the URL when the server stays unreachable or answers with an
            error status.

    """
    # streamed: a server that ignores the range sends no more than what is read (nothing)
    response = _http_request(
        url, what, settings, "GET", headers={"Range": "bytes=0-1023"}, stream=True
    )
    if not response.ok:
        raise SourceError(_status_error(what, url, response, settings))


def is_remote(path: str | Path) -> bool:
    """Whether a path is an ``http(s)://`` URL."""
    return str(path).startswith(("http://", "https://"))


def gdal_path(href: str | Path) -> str:
    """Return the path GDAL opens for an href: ``/vsicurl/`` before URLs, ``file://`` dropped."""
    href = str(href)
    if is_remote(href):
        return f"/vsicurl/{href}"
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


def join_path(root: str | Path, *parts: str) -> str:
    """Join path parts onto a local folder or a URL."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(Path(root).joinpath(*parts))


def exists(path: str, what: str, settings: HttpSettings) -> bool:
    """Whether a local file or a URL exists (a URL: only HTTP 404 says no)."""
    if is_remote(path):
        return remote_exists(path, what, settings)
    return Path(path).exists()


_GDAL_RETRIED = re.compile(r"HTTP response code: (429|5\d\d)")


_DEFINITIVE = re.compile(r"HTTP response code: 4\d\d")


def url_of(path: str) -> str:
    """The URL of a GDAL ``/vsicurl/`` path (a local path is returned as it is)."""
    return path.removeprefix("/vsicurl/")


def gdal_read(
    path: str, what: str, read: Callable[[], T], settings: HttpSettings | None = None
) -> T:
    """Run a GDAL read of ``path`` with clear errors, retrying a remote file's failures.

    GDAL retries HTTP 429/5xx and timeouts of each request itself; a remote read that
    still fails for another reason (a dropped connection, a transfer cut short) is
    opened and read again, up to :data:`REOPEN_ATTEMPTS` times.

    Args:
        path: the GDAL path (``/vsicurl/https://...`` for a URL).
        what: what the file is, for messages.
        read: opens ``path`` and reads it; raises ``RasterioError`` on failure.
        settings: retries and timeouts (default: from the environment).

    Raises:
        SourceError: naming the URL when a remote file stays unreachable or is not found.
        DataError: naming the file when it cannot be decoded (missing, corrupt, cut off).

    """
    settings = settings or HttpSettings.from_env()
    remote = path.startswith("/vsicurl/")
    attempts = REOPEN_ATTEMPTS if remote else 1
    for attempt in range(1, attempts + 1):
        try:
            return read()
        except RasterioError as err:
            text = str(err)
            again = not (_GDAL_RETRIED.search(text) or _DEFINITIVE.search(text))
            if remote and attempt < attempts and again:
                delay = settings.retry_delay * 2 ** (attempt - 1)
                logger.warning(
                    "%s: %s; opening it again in %g s (attempt %d of %d)",
                    url_of(path),
                    text,
                    delay,
                    attempt + 1,
                    attempts,
                )
                time.sleep(delay)
                continue
            if remote and _DEFINITIVE.search(text):
                raise SourceError(
                    f"{what} at {url_of(path)} cannot be fetched: {text}. Fix: check the URL "
                    "(labels.root / imagery.root, the STAC item's asset href)."
                ) from err
            if remote and _GDAL_RETRIED.search(text):
                raise SourceError(
                    f"Cannot read {what} from {url_of(path)}: {text} {network_fix(settings)}"
                ) from err
            if remote:
                # GDAL's last message often hides the cause ("not recognized as being in a
                # supported file format" after a failed range request): ask the server, and
                # raise a SourceError naming the URL if it fails
                check_remote_readable(url_of(path), what, settings)
            raise DataError(
                f"Cannot read {what} '{url_of(path)}': {text}. The file is missing, corrupt or "
                "cut off; fix or re-download it (or rebuild the demo bucket)."
            ) from err
    raise AssertionError("unreachable")  # pragma: no cover
