"""Routing for the ``api`` function: a table of (method, path pattern) → handler.

Every request is first held to the input limits of :mod:`shared.api.body` (414, 413); every
route but the public ones then authenticates the bearer token. Every error is
``application/problem+json`` with one status per error class (``shared.errors``): a 401
carries ``WWW-Authenticate: Bearer``, a 405 ``Allow``, a 413 (and the 400 for a body shorter
than declared) is streamed, so functions-framework does not try to read the rest of the body,
and anything unexpected
is a 500 ``keyway.error`` with no traceback (logged with its exception class only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from flask import Response
from werkzeug.exceptions import HTTPException

from shared import bootstrap, console
from shared.api import body as api_body
from shared.api import routes
from shared.api.authn import verifier
from shared.auth.principal import Principal, Unauthenticated
from shared.config import Config
from shared.errors import KeywayError, NotFound, PermanentError
from shared.http import PROBLEM_JSON, problem, problem_from_error, raw_path
from shared.log import get_logger
from shared.ports import Ports

log = get_logger("keyway.api")


class MethodNotAllowed(PermanentError):
    status, key, title = 405, "api.method_not_allowed", "Method not allowed"

    def __init__(self, detail: str, allowed: list[str]) -> None:
        super().__init__(detail)
        self.allowed = allowed


@dataclass
class Context:
    ports: Ports
    config: Config
    request: Any
    principal: Principal | None
    params: dict[str, str]
    body: bytes = b""

    def json(self, fields: tuple[str, ...], *, required: bool = True) -> dict[str, Any]:
        """The body as a JSON object of only ``fields`` (:func:`shared.api.body.json_object`)."""
        return api_body.json_object(self.request, self.body, fields, required=required)


Handler = Callable[[Context], Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    (method, re.compile(f"^{pattern}$"), handler, public)
    for method, pattern, handler, public in routes.TABLE
]


def handle(ports: Ports, request: Any) -> Response:
    config = bootstrap.config()
    try:
        api_body.check_uri(request)
        if console.owns(request.path):  # HTML pages: their own session and CSRF rules
            return console.handle(ports, request)
        raw = api_body.read(request, config.api_max_body_bytes)
        handler, params, public = _match(request.method, raw_path(request.environ, request.path))
        principal = None if public else verifier(config, ports.clock).verify(
            request.headers.get("Authorization"))
        return handler(Context(ports, config, request, principal, params, raw))
    except KeywayError as e:
        return _problem(e)
    except Exception as e:  # noqa: BLE001 — never a traceback: a stable key and the class
        log.error("api.unexpected", extra={"fields": {"error": type(e).__name__,
                                                      "path": request.path}})
        return _problem(KeywayError("the request could not be processed"))


def _problem(error: KeywayError) -> Response:
    response = problem_from_error(error)
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="keyway"'
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, api_body.UNREAD):  # streamed: the rest of the body stays unread
        log.info(error.key, extra={"fields": {"component": "api"}})
        return Response(iter([response.get_data()]), status=error.status,
                        mimetype=PROBLEM_JSON)
    return response


_FRAMEWORK_CODES = {404: NotFound.key, 405: MethodNotAllowed.key, 413: api_body.PayloadTooLarge.key,
                    414: api_body.UriTooLong.key, 415: api_body.UnsupportedMediaType.key}


def install(flask_app: Any) -> None:
    """Make the answers the framework gives itself (functions-framework's 404 for
    ``/robots.txt`` and ``/favicon.ico``, any werkzeug HTTP error) problem+json too."""
    flask_app.register_error_handler(HTTPException, _framework_error)


def _framework_error(error: HTTPException) -> Response:
    status = error.code or 500
    return problem(status, error.name, code=_FRAMEWORK_CODES.get(status, f"http.{status}"))


def _match(method: str, path: str) -> tuple[Handler, dict[str, str], bool]:
    """The route for ``method`` and the raw ``path``; each parameter is decoded once, except
    ``record_id``, which :func:`shared.api.data.get_record` resolves from its raw form."""
    path = "/" + path.strip("/")
    allowed: list[str] = []
    for route_method, pattern, handler, public in ROUTES:
        found = pattern.match(path)
        if found:
            if route_method == method:
                params = {k: v if k == "record_id" else unquote(v)
                          for k, v in found.groupdict().items()}
                return handler, params, public
            allowed.append(route_method)
    if allowed:
        raise MethodNotAllowed(f"{method[:16]} is not allowed on this path",
                               sorted(set(allowed)))
    raise NotFound("no route for this path")
