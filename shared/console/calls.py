"""The console's one door into the API: each page calls the same handler a bearer-token
request would reach (:data:`shared.api.routes.TABLE`), in-process, with the principal the
console session stands for. So every rule of the API — tenant isolation (another tenant's id
is a 404), admin-only operations, scopes, input checks — holds for the pages unchanged, and
the pages never write the stores on their own. The one read of their own is a connection's
webhook registrations (no API route lists them), made only after ``GET
/v1/connections/{id}``'s tenant check passed (:func:`shared.console.operations.connection`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from shared.auth.principal import Principal
from shared.config import Config
from shared.errors import KeywayError
from shared.ports import Ports


@dataclass
class _Call:
    """What a handler reads of a request: query arguments and the body's media type."""
    args: MultiDict = field(default_factory=MultiDict)
    mimetype: str = "application/json"


def call(ports: Ports, config: Config, principal: Principal, handler: Any,
         params: dict[str, str] | None = None, body: dict[str, Any] | None = None,
         args: dict[str, str] | None = None) -> tuple[int, Any]:
    """``(status, decoded JSON)`` of ``handler``; its ``KeywayError`` propagates as is."""
    from shared.api.app import Context  # the api module registers the console: import late

    raw = json.dumps(body).encode() if body is not None else b""
    request = _Call(MultiDict(args or {}))
    response = handler(Context(ports, config, request, principal, params or {}, raw))
    return response.status_code, json.loads(response.get_data() or b"null")


class ApiRefused(KeywayError):
    """An API answer that is not a success, as a page: its status, title and stable key."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail") or problem.get("title") or "refused"))
        self.status = status
        self.title = str(problem.get("title") or "Refused")
        self.key = str(problem.get("code") or f"http.{status}")


def ok(ports: Ports, config: Config, principal: Principal, handler: Any, **kwargs: Any) -> Any:
    """The decoded body of a successful :func:`call`; else :class:`ApiRefused`."""
    status, body = call(ports, config, principal, handler, **kwargs)
    if status >= 400:
        raise ApiRefused(status, body if isinstance(body, dict) else {})
    return body
