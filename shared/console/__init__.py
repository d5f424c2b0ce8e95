"""The console: pages a person clicks through, served by the ``api`` function.

``/api/console/…`` (sign-in, connections with health, progress and freshness, one
connection's operations, actions, webhook registrations, notification subscriptions, identities,
the connect pages and their result page) and ``/api/docs`` (the OpenAPI document in a pinned
Swagger UI from the ``swagger-ui-bundle`` package). :func:`owns` says which paths are the
console's; :func:`handle` answers them with HTML (:mod:`shared.console.routes`). Every page
reaches data only through the API's own handlers (:mod:`shared.console.calls`).
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared.ports import Ports


def owns(path: str) -> bool:
    """Whether the api's ``path`` is a console page (then :func:`handle` answers it)."""
    return any(path == p or path.startswith(p + "/") for p in ("/console", "/docs"))


def handle(ports: Ports, request: Any) -> Response:
    from shared.console import routes

    return routes.dispatch(ports, request)
