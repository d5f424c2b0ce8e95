"""HTTP helpers for HTTPS functions: problem+json errors (RFC 9457) and JSON responses."""

from __future__ import annotations

import json
from typing import Any

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
