"""The ``oauth-P`` HTTPS function: ``GET|POST /start`` (:mod:`shared.oauth.begin`) and
``GET /callback`` (:mod:`shared.oauth.callback`)."""

from __future__ import annotations

from typing import Any

from shared import bootstrap
from shared.errors import NotFound
from shared.http import problem_from_error
from shared.oauth.begin import start_step
from shared.oauth.callback import callback
from shared.ports import Ports


def handler(provider: str):
    def handle(ports: Ports, request: Any) -> Any:
        path, method = request.path.rstrip("/"), request.method
        if path == "/start" and method in ("GET", "POST"):
            return start_step(ports, bootstrap.config(), provider, request)
        if path == "/callback" and method == "GET":
            return callback(ports, bootstrap.config(), provider, request.args,
                            cookies=request.cookies)
        return problem_from_error(NotFound(
            f"oauth-{provider} serves GET|POST /start and GET /callback only"))

    return handle
