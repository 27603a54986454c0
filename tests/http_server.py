"""A loopback HTTP server for tests: files with byte ranges, a minimal STAC API, faults.

It stands in for the public sources on 127.0.0.1 so that the real readers (GDAL's
``/vsicurl/``, pystac-client) run over real HTTP:

* **Files**: ``GET``/``HEAD`` of any file under ``root``, e.g. WorldCover tiles under
  ``v200/2021/map/`` and Sentinel-2 band COGs under ``sentinel-s2-l2a-cogs/``, with
  ``Range`` support as S3 answers it: ``206 Partial Content`` for one range,
  ``multipart/byteranges`` for several, ``416`` when a range starts past the end.
* **STAC API**: ``GET /`` (landing page with the item-search and query conformance
  classes), ``GET /conformance``, ``GET /collections``, ``GET /collections/{id}``,
  ``GET``/``POST /search`` returning an ``ItemCollection`` filtered by ``collections``,
  ``bbox``, ``datetime`` and ``query`` (``eo:cloud_cover`` with lt/lte/gt/gte/eq), paged
  with ``limit`` and a ``next`` link. Items are plain dicts whose asset hrefs point at
  this server (:meth:`LoopbackServer.url`).
* **Accounting**: bytes of file bodies served per path, and every request's method, path
  and ``Range`` header.
* **Faults**: :meth:`LoopbackServer.fail` makes the next N matching requests (or all of
  them) answer 500 or 503, or drop the connection without an answer.

Usage::

    with serve(folder) as server:
        server.add_items("sentinel-2-l2a", items)
        url = server.url("v200/2021/map/ESA_WorldCover_10m_2021_v200_N15W018_Map.tif")
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FaultMode = Literal["500", "503", "drop"]

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/geojson",
]
"""Conformance classes the landing page declares."""

DEFAULT_LIMIT = 10
"""Items per page when the search does not say."""

_BOUNDARY = "landcover-test-boundary"


@dataclass
class _Faults:
    """Which requests fail and how."""

    remaining: int = 0  # requests still to fail; -1: every one
    mode: FaultMode = "503"
    prefix: str = ""  # only paths starting with it (after the leading '/')
    method: str | None = None  # only this method (GET, HEAD, POST); None: any
    failed: int = 0  # requests failed so far


@dataclass
class _State:
    """What the handler threads share, behind one lock."""

    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    bytes_served: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


def _parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=0-99,200-`` -> [(0, 99), (200, size - 1)]; None when unsatisfiable."""
    ranges = []
    for part in header.removeprefix("bytes=").split(","):
        start, _, end = part.strip().partition("-")
        if not start:  # suffix range: the last N bytes
            first, last = max(size - int(end), 0), size - 1
        else:
            first, last = int(start), min(int(end) if end else size - 1, size - 1)
        if first >= size or first > last:
            return None
        ranges.append((first, last))
    return ranges


def _time(value: str, end: bool) -> dt.datetime | None:
    """A datetime bound of a search: ISO datetime or date (a date's end is its last second)."""
    if value in ("", ".."):
        return None
    if len(value) == 10:
        day = dt.date.fromisoformat(value)
        clock = dt.time(23, 59, 59, 999999) if end else dt.time(0)
        return dt.datetime.combine(day, clock, tzinfo=dt.timezone.utc)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _matches(item: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether an item passes the search's collections, bbox, datetime and query filters."""
    collections = params.get("collections")
    if collections and item.get("collection") not in collections:
        return False
    bbox = params.get("bbox")
    if bbox:
        west, south, east, north = item["bbox"]
        if west > bbox[2] or east < bbox[0] or south > bbox[3] or north < bbox[1]:
            return False
    span = params.get("datetime")
    if span:
        start, _, end = span.partition("/") if "/" in span else (span, "", span)
        when = _time(item["properties"]["datetime"], end=False)
        low, high = _time(start, end=False), _time(end, end=True)
        if (low and when < low) or (high and when > high):
            return False
    tests = {
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "eq": lambda a, b: a == b,
    }
    for name, ops in (params.get("query") or {}).items():
        value = item["properties"].get(name)
        for op, bound in ops.items():
            if value is None or not tests[op](value, bound):
                return False
    return True


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files with ranges and the STAC API; counts and fails as the state says."""

    protocol_version = "HTTP/1.1"  # keep-alive, as S3 and GDAL's curl use it
    state: _State  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet (pytest shows failures, not access logs)."""

    # ------------------------------------------------------------------ plumbing

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path.lstrip("/")

    def _inject_fault(self) -> bool:
        """Fail this request if a fault is armed for its path; True when it failed."""
        faults = self.state.faults
        with self.state.lock:
            self.state.requests.append((self.command, self._path(), self.headers.get("Range")))
            armed = (
                faults.remaining != 0
                and self._path().startswith(faults.prefix)
                and faults.method in (None, self.command)
            )
            if armed:
                faults.failed += 1
                if faults.remaining > 0:
                    faults.remaining -= 1
        if not armed:
            return False
        if faults.mode == "drop":
            # close without a byte of answer, as a dropped connection looks to the client
            self.close_connection = True
            return True
        self._send_bytes(int(faults.mode), b"injected failure", "text/plain")
        return True

    def _send_bytes(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, document: Any, status: int = 200) -> None:
        body = json.dumps(document).encode()
        self._send_bytes(status, body, "application/json")

    # ------------------------------------------------------------------ verbs

    def do_HEAD(self) -> None:
        """Answer a HEAD like a GET, without the body."""
        self.do_GET()

    def do_GET(self) -> None:
        """Serve the STAC API or a file."""
        if self._inject_fault():
            return
        path = self._path()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        match path.split("/"):
            case [""]:
                self._send_json(self._landing())
            case ["conformance"]:
                self._send_json({"conformsTo": CONFORMANCE})
            case ["collections"]:
                self._send_json({"collections": list(self.state.collections.values())})
            case ["collections", name] if name in self.state.collections:
                self._send_json(self.state.collections[name])
            case ["search"]:
                self._search(self._get_params(query))
            case _:
                self._send_file(path)

    def do_POST(self) -> None:
        """Serve ``POST /search``."""
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else b"{}"
        if self._inject_fault():
            return
        if self._path() != "search":
            self._send_json({"code": "NotFound"}, 404)
            return
        self._search(json.loads(body or b"{}"))

    # ------------------------------------------------------------------ files

    def _send_file(self, rel: str) -> None:
        root = self.state.root.resolve()
        path = (root / urllib.parse.unquote(rel)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            self._send_bytes(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        if not header:
            self._send_counted(rel, 200, [data], "image/tiff", Accept_Ranges="bytes")
            return
        ranges = _parse_ranges(header, len(data))
        if ranges is None:
            self._send_bytes(416, b"", "text/plain", Content_Range=f"bytes */{len(data)}")
            return
        if len(ranges) == 1:
            first, last = ranges[0]
            self._send_counted(
                rel,
                206,
                [data[first : last + 1]],
                "image/tiff",
                Content_Range=f"bytes {first}-{last}/{len(data)}",
            )
            return
        parts = []
        for first, last in ranges:
            head = (
                f"--{_BOUNDARY}\r\nContent-Type: image/tiff\r\n"
                f"Content-Range: bytes {first}-{last}/{len(data)}\r\n\r\n"
            )
            parts += [head.encode(), data[first : last + 1], b"\r\n"]
        parts.append(f"--{_BOUNDARY}--\r\n".encode())
        self._send_counted(rel, 206, parts, f"multipart/byteranges; boundary={_BOUNDARY}")

    def _send_counted(
        self, rel: str, status: int, chunks: list[bytes], content_type: str, **headers: str
    ) -> None:
        body = b"".join(chunks)
        if self.command != "HEAD":  # counted before sending: the client may be done first
            with self.state.lock:
                self.state.bytes_served[rel] += len(body)
        self._send_bytes(status, body, content_type, **headers)

    # ------------------------------------------------------------------ STAC API

    def _landing(self) -> dict[str, Any]:
        base = self.state.base_url
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "loopback",
            "description": "A minimal STAC API for tests",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base}/conformance"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {
                    "rel": "search",
                    "href": f"{base}/search",
                    "type": "application/geo+json",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "href": f"{base}/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
            ],
        }

    @staticmethod
    def _get_params(query: dict[str, list[str]]) -> dict[str, Any]:
        """GET search parameters as the POST body has them."""
        params: dict[str, Any] = {}
        if "collections" in query:
            params["collections"] = query["collections"][0].split(",")
        if "bbox" in query:
            params["bbox"] = [float(v) for v in query["bbox"][0].split(",")]
        for name in ("datetime", "limit", "token"):
            if name in query:
                params[name] = query[name][0]
        if "query" in query:
            params["query"] = json.loads(query["query"][0])
        return params

    def _search(self, params: dict[str, Any]) -> None:
        found = [item for item in self.state.items if _matches(item, params)]
        limit = int(params.get("limit") or DEFAULT_LIMIT)
        start = int(params.get("token") or 0)
        page = found[start : start + limit]
        links = []
        if start + limit < len(found):
            next_params = {**params, "token": str(start + limit)}
            if self.command == "POST":
                link = {"method": "POST", "body": next_params, "merge": False}
                links.append({"rel": "next", "href": f"{self.state.base_url}/search", **link})
            else:
                encoded = {
                    k: ",".join(map(str, v)) if isinstance(v, list) else v
                    for k, v in next_params.items()
                }
                if "query" in encoded:
                    encoded["query"] = json.dumps(encoded["query"])
                qs = urllib.parse.urlencode(encoded)
                links.append({"rel": "next", "href": f"{self.state.base_url}/search?{qs}"})
        self._send_json(
            {
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberMatched": len(found),
                "numberReturned": len(page),
            }
        )


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (random port) serving ``root``.

    Attributes:
        root: the folder served.
        base_url: ``http://127.0.0.1:<port>``.
    """

    def __init__(self, root: Path) -> None:
        """Bind to a free port; :meth:`start` serves."""
        self.root = Path(root)
        self._state = _State(root=self.root)
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._state.base_url = self.base_url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LoopbackServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def url(self, rel: str | Path = "") -> str:
        """The URL of a path under ``root`` (``""``: the API root)."""
        return f"{self.base_url}/{Path(rel).as_posix().lstrip('/')}" if rel else self.base_url

    # ------------------------------------------------------------------ accounting

    def bytes_served(self, rel: str | Path | None = None) -> int:
        """Bytes of file bodies served for one path under ``root`` (None: all paths)."""
        with self._state.lock:
            if rel is None:
                return sum(self._state.bytes_served.values())
            return self._state.bytes_served[Path(rel).as_posix()]

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        """(method, path, Range header) of every request so far."""
        with self._state.lock:
            return list(self._state.requests)

    def reset_counts(self) -> None:
        """Forget the bytes and requests counted so far."""
        with self._state.lock:
            self._state.bytes_served.clear()
            self._state.requests.clear()

    # ------------------------------------------------------------------ faults

    def fail(
        self, count: int, mode: FaultMode = "503", prefix: str = "", method: str | None = None
    ) -> None:
        """Make the next ``count`` requests (-1: every request) fail.

        Args:
            count: how many requests fail; -1 for all of them from now on.
            mode: ``"500"``/``"503"`` answer with that status; ``"drop"`` closes the
                connection without an answer.
            prefix: only requests whose path (without the leading ``/``) starts with it.
            method: only requests with this method (``"GET"``, ``"HEAD"``, ``"POST"``).
        """
        with self._state.lock:
            self._state.faults = _Faults(count, mode, prefix, method)

    def heal(self) -> None:
        """Stop failing requests."""
        self.fail(0)

    @property
    def failed(self) -> int:
        """How many requests were failed on purpose since the last :meth:`fail`."""
        with self._state.lock:
            return self._state.faults.failed

    # ------------------------------------------------------------------ STAC API

    def add_collection(self, collection_id: str, description: str = "test collection") -> None:
        """Declare a collection (``/collections/{id}``)."""
        self._state.collections[collection_id] = {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": collection_id,
            "description": description,
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [["2015-06-27T00:00:00Z", None]]},
            },
            "links": [
                {"rel": "self", "href": f"{self.base_url}/collections/{collection_id}"},
                {"rel": "root", "href": f"{self.base_url}/"},
            ],
        }

    def add_items(self, collection_id: str, items: list[dict[str, Any]]) -> None:
        """Publish items (STAC item dicts, asset hrefs absolute) in a collection."""
        if collection_id not in self._state.collections:
            self.add_collection(collection_id)
        for item in items:
            item = {**item, "collection": collection_id}
            collection_url = f"{self.base_url}/collections/{collection_id}"
            item["links"] = [
                {"rel": "self", "href": f"{collection_url}/items/{item['id']}"},
                {"rel": "collection", "href": collection_url},
                {"rel": "root", "href": f"{self.base_url}/"},
            ]
            self._state.items.append(item)


@contextmanager
def serve(root: str | Path) -> Iterator[LoopbackServer]:
    """Serve ``root`` on 127.0.0.1 for the duration of the block."""
    server = LoopbackServer(Path(root)).start()
    try:
        yield server
    finally:
        server.stop()
