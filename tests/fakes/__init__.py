"""Real HTTP fakes of the Google REST surfaces keyway's adapters use.

Each fake is a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0) served from a daemon
thread. It speaks JSON over HTTP exactly as the official clients send it with
``transport="rest"`` and answers errors in Google's JSON shape
(``{"error": {"code": 404, "status": "NOT_FOUND", "message": ...}}``) so the clients raise
the real ``google.api_core`` exceptions. Set ``unavailable = True`` to make every request
answer 503 ``UNAVAILABLE`` (the outage path), and ``corrupt_responses = True`` to have the fakes
flip a bit of the bytes they return without fixing the checksum sent with them (see
:meth:`FakeGoogleServer.returned`). Nothing here imports ``google.cloud``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]
Route = tuple[str, re.Pattern[str], Callable[..., Json]]


class ApiError(Exception):
    """A Google-style error answer: HTTP code, canonical status and message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message

    def body(self) -> Json:
        return {"error": {"code": self.code, "status": self.status, "message": self.message}}


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def already_exists(message: str) -> ApiError:
    return ApiError(409, "ALREADY_EXISTS", message)


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(400, "FAILED_PRECONDITION", message)


def b64decode(value: Any, field: str) -> bytes:
    """Decode a proto-JSON ``bytes`` field (absent means empty), 400 if malformed."""
    if value is None:
        return b""
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as e:
        raise invalid_argument(f"Invalid value at '{field}': not base64") from e


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def crc32c(data: bytes) -> int:
    """Bit-at-a-time CRC32C, independent of the adapters' table-driven one."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def check_crc(data: bytes, claimed: Any, field: str) -> bool:
    """``True`` if a checksum was sent and matches; 400 if it was sent and does not."""
    if claimed is None:
        return False
    if int(claimed) != crc32c(data):
        raise invalid_argument(f"The checksum in field {field} did not match the data.")
    return True


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeGoogleServer:
    """Base fake: subclasses list ``routes`` of (verb, path regex, handler).

    A handler is called as ``handler(query, body, **path_groups)`` under the fake's lock and
    returns the JSON answer or raises :class:`ApiError`.
    """

    routes: list[Route] = []

    def __init__(self) -> None:
        self.unavailable = False
        self.corrupt_responses = False
        self.calls: list[str] = []
        self.connections: set[socket.socket] = set()
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, for ``client_options={"api_endpoint": ...}``."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut kept-alive connections, so the service is really gone."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def returned(self, data: bytes) -> bytes:
        """``data`` as a route answers it: one bit flipped when ``corrupt_responses`` is set
        (routes send the checksum of the true ``data``, so the client must notice)."""
        return bytes([data[0] ^ 1]) + data[1:] if self.corrupt_responses and data else data

    def dispatch(self, verb: str, target: str, raw_body: bytes) -> tuple[int, Json]:
        """Route one request; returns (HTTP status, JSON body)."""
        split = urlsplit(target)
        path = unquote(split.path)
        with self.lock:
            self.calls.append(f"{verb} {path}")
            if self.unavailable:
                return 503, ApiError(503, "UNAVAILABLE", "The service is unavailable.").body()
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
            if not isinstance(body, dict):
                raise invalid_argument("Request body must be a JSON object.")
            for route_verb, pattern, handler in self.routes:
                match = pattern.fullmatch(path)
                if match and route_verb == verb:
                    with self.lock:
                        return 200, handler(self, query, body, **match.groupdict())
            raise not_found(f"No route for {verb} {path}.")
        except ApiError as e:
            return e.code, e.body()
        except ValueError:
            return 400, invalid_argument("Invalid JSON payload received.").body()


class _Handler(BaseHTTPRequestHandler):
    """Reads the body, lets the fake answer, writes JSON with a Content-Length."""

    fake: FakeGoogleServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls

    def setup(self) -> None:
        super().setup()
        with self.fake.lock:
            self.fake.connections.add(self.connection)

    def finish(self) -> None:
        with self.fake.lock:
            self.fake.connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload = self.fake.dispatch(self.command, self.path, raw)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet: pytest captures nothing useful from request logs."""
