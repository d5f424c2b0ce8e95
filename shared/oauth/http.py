"""The ``oauth-P`` HTTPS function: ``GET /callback`` only."""

from __future__ import annotations

from typing import Any

from shared import bootstrap
from shared.errors import NotFound
from shared.http import problem_from_error
from shared.oauth.callback import callback
from shared.ports import Ports


def handler(provider: str):
    def handle(ports: Ports, request: Any) -> Any:
        if request.path.rstrip("/") != "/callback" or request.method != "GET":
            return problem_from_error(NotFound(f"oauth-{provider} serves GET /callback only"))
        return callback(ports, bootstrap.config(), provider, request.args)

    return handle
