"""Routing for the ``api`` function: a table of (method, path pattern) → handler.

Every route but the public ones authenticates the bearer token first; errors are
``application/problem+json`` with one status per error class (``shared.errors``); a 401 carries
``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response

from shared import bootstrap
from shared.api import routes
from shared.api.authn import verifier
from shared.auth.principal import Principal, Unauthenticated
from shared.config import Config
from shared.errors import KeywayError, NotFound, PermanentError
from shared.http import problem_from_error
from shared.ports import Ports


class MethodNotAllowed(PermanentError):
    status, key, title = 405, "api.method_not_allowed", "Method not allowed"


@dataclass
class Context:
    ports: Ports
    config: Config
    request: Any
    principal: Principal | None
    params: dict[str, str]


Handler = Callable[[Context], Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    (method, re.compile(f"^{pattern}$"), handler, public)
    for method, pattern, handler, public in routes.TABLE
]


def handle(ports: Ports, request: Any) -> Response:
    config = bootstrap.config()
    try:
        handler, params, public = _match(request.method, request.path)
        principal = None if public else verifier(config, ports.clock).verify(
            request.headers.get("Authorization"))
        return handler(Context(ports, config, request, principal, params))
    except KeywayError as e:
        response = problem_from_error(e)
        if isinstance(e, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer realm="keyway"'
        return response


def _match(method: str, path: str) -> tuple[Handler, dict[str, str], bool]:
    path = "/" + path.strip("/")
    allowed = False
    for route_method, pattern, handler, public in ROUTES:
        found = pattern.match(path)
        if found:
            if route_method == method:
                return handler, found.groupdict(), public
            allowed = True
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {path}")
    raise NotFound(f"no route for {path}")
