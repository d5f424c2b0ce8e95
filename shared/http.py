"""HTTP helpers for HTTPS functions: problem+json errors (RFC 9457) and JSON responses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from flask import Response

from shared.errors import KeywayError, RetryableError

PROBLEM_JSON = "application/problem+json"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, sort_keys=True), status=status, mimetype="application/json")


def problem(status: int, title: str, detail: str = "", *, type_: str = "about:blank",
            **extra: Any) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(json.dumps(body, sort_keys=True), status=status, mimetype=PROBLEM_JSON)


def problem_from_error(error: KeywayError) -> Response:
    """The one mapping from the error tree to an HTTP response (detail is secret-free); a
    retryable error's 503 says when to try again (``Retry-After``)."""
    response = problem(error.status, error.title, error.detail, code=error.key)
    if error.status == 503 and isinstance(error, RetryableError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def raw_path(environ: Mapping[str, Any], decoded: str) -> str:
    """The path below the mount point exactly as the client sent it, percent-escapes intact:
    ``RAW_URI`` (set by the werkzeug server, its test client and gunicorn) less its query and
    ``SCRIPT_NAME``. So an id holding ``%2F`` stays one path segment. ``decoded`` (the WSGI
    ``PATH_INFO``) re-encoded when the raw form does not decode to it (a proxy rewrote it)."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    if raw.startswith(("http://", "https://")):  # an absolute-form request target
        raw = "/" + raw.split("/", 3)[3] if raw.count("/") >= 3 else "/"
    script = str(environ.get("SCRIPT_NAME", ""))
    if script and raw.startswith(script):
        raw = raw[len(script):]
    return raw if raw.startswith("/") and unquote(raw) == decoded else quote(decoded or "/")
