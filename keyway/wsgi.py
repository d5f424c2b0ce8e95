"""The local front door: ``/healthz`` plus ``/<function-name>/…`` routed to each function.

Embedded mode mounts every function's functions-framework app in this process; emulator mode
forwards to one functions-framework process per function (production topology).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from shared.components import COMPONENTS

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade", "content-length", "content-encoding"}


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


class ProblemRequestHandler(WSGIRequestHandler):
    """The local server's own refusals (a request line over 65536 bytes → 414, a malformed
    request line → 400, too many headers → 431) as problem+json, like every function's."""

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        title = self.responses.get(code, ("Error", ""))[0]
        body = json.dumps({"type": "about:blank", "title": title, "status": code,
                           "code": f"http.{code}"}).encode()
        self.log_error("code %d, message %s", code, title)
        self.send_response(code, title)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def root_app(backend: str, sandbox: Mapping[str, str] | None = None) -> Callable:
    """Answers ``/healthz`` and a problem+json 404 for anything that is not a function."""

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/healthz":
            functions = [
                {"name": c.name, "trigger": c.trigger, "path": f"/{c.name}/",
                 "topics": c.topics}
                for c in COMPONENTS.values()
            ]
            body = {"status": "ok", "backend": backend, "functions": functions,
                    "sandbox_providers": dict(sandbox or {})}
            return Response(json.dumps(body), mimetype="application/json")
        return _problem(404, "Not Found", f"no function serves {request.path}")

    return app


def mounted(backend: str, apps: Mapping[str, Callable],
            sandbox: Mapping[str, str] | None = None) -> Callable:
    return DispatcherMiddleware(root_app(backend, sandbox),
                                {f"/{name}": app for name, app in apps.items()})


def proxy_app(target: str, session: requests.Session) -> Callable:
    """Forward every request to ``target`` (``http://127.0.0.1:N``), path and body intact."""

    @Request.application
    def app(request: Request) -> Response:
        url = target + (request.path or "/")
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        skip = _HOP_BY_HOP | {"host"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        try:
            upstream = session.request(request.method, url, headers=headers,
                                       data=request.get_data(), allow_redirects=False, timeout=60)
        except requests.RequestException:
            return _problem(502, "Bad Gateway", "the function process did not answer")
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
        return Response(upstream.content, status=upstream.status_code, headers=out_headers)

    return app
