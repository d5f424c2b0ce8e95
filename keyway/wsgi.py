"""The local front door: ``/healthz`` plus ``/<function-name>/…`` routed to each function.

Embedded mode mounts every function's functions-framework app in this process; emulator mode
forwards to one functions-framework process per function (production topology).

Push endpoints: in production only Pub/Sub reaches a Pub/Sub-triggered function (a push
authenticated with an OIDC token that Cloud Run checks). Locally :func:`push_guard` stands in
for that check: every request to such a function must carry the local push credential (secret
``local-push-token``, made at first start) in ``X-Keyway-Push-Token`` (the embedded pump) or
as the ``token`` query parameter (the Pub/Sub emulator's push endpoint, which can carry only a
URL); it is compared in constant time and removed before the function sees the request.
Anything else is a 401 problem+json (``runner.push_unauthorized``) and nothing is processed.
The same guard sits in front of each such function on its own loopback port in emulator mode
(:mod:`keyway.fnserve`), so no local port takes a push without the credential.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from shared.components import COMPONENTS
from shared.http import problem, raw_path
from shared.log import get_logger

PUSH_HEADER = "X-Keyway-Push-Token"
PUSH_QUERY = "token"
log = get_logger("keyway.wsgi")

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


def root_app(backend: str, sandbox: Mapping[str, str] | None = None,
             status: Callable[[], dict] | None = None,
             processes: Callable[[], Mapping[str, dict]] | None = None) -> Callable:
    """Answers ``/healthz`` and a problem+json 404 for anything that is not a function.
    ``status()`` gives the health part (:func:`keyway.supervisor.health`: ``status``,
    ``backends``, …); ``processes()`` each function process's state (emulator mode). A
    degraded stack answers 503."""

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/healthz":
            running = dict(processes()) if processes else {}
            functions = [
                {"name": c.name, "trigger": c.trigger, "path": f"/{c.name}/",
                 "topics": c.topics, **({"process": running[c.name]}
                                        if c.name in running else {})}
                for c in COMPONENTS.values()
            ]
            health = status() if status else {"status": "ok"}
            body = {**health, "backend": backend, "functions": functions,
                    "sandbox_providers": dict(sandbox or {})}
            code = 200 if health["status"] == "ok" else 503
            return Response(json.dumps(body), status=code, mimetype="application/json")
        return _problem(404, "Not Found", f"no function serves {request.path}")

    return app


def mounted(backend: str, apps: Mapping[str, Callable],
            sandbox: Mapping[str, str] | None = None,
            push_token: bytes | None = None,
            status: Callable[[], dict] | None = None) -> Callable:
    """Every app under ``/<name>``; with ``push_token``, each Pub/Sub-triggered function's
    app behind :func:`push_guard`; ``/healthz`` from ``status`` (:func:`root_app`)."""
    return DispatcherMiddleware(root_app(backend, sandbox, status),
                                {f"/{name}": guarded(name, app, push_token)
                                 for name, app in apps.items()})


def guarded(name: str, app: Callable, push_token: bytes | None) -> Callable:
    """``app`` behind :func:`push_guard` if ``name`` is Pub/Sub-triggered and a token is set."""
    if push_token is None or COMPONENTS[name].trigger == "http":
        return app
    return push_guard(app, push_token, name)


def push_guard(app: Callable, push_token: bytes, component: str) -> Callable:
    """WSGI middleware: ``app`` only for requests carrying ``push_token`` (see module doc)."""
    def guard(environ: dict, start_response: Callable):
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        given = environ.get("HTTP_X_KEYWAY_PUSH_TOKEN") or next(
            (v for k, v in query if k == PUSH_QUERY), "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), push_token):
            log.warning("runner.push_unauthorized", extra={"fields": {
                "component": component, "path": environ.get("PATH_INFO", "")}})
            return problem(401, "Unauthorized", "a push endpoint needs the local push credential",
                           code="runner.push_unauthorized")(environ, start_response)
        environ = {**environ, "QUERY_STRING": urlencode(
            [(k, v) for k, v in query if k != PUSH_QUERY])}
        environ.pop("HTTP_X_KEYWAY_PUSH_TOKEN", None)
        return app(environ, start_response)
    return guard


def proxy_app(target: str | Callable[[], str], session: requests.Session,
              push_token: bytes | None = None) -> Callable:
    """Forward every request to ``target`` (``http://127.0.0.1:N``, or a function giving it
    at each request: a restarted function may have moved), path and body intact —
    the path as the client sent it (:func:`shared.http.raw_path`), so ``%2F`` or ``%25`` in an
    id reaches the function still encoded; with ``push_token``, carrying it in
    ``X-Keyway-Push-Token`` (a Pub/Sub-triggered function's own port asks for it too:
    :mod:`keyway.fnserve`). Mounted behind :func:`push_guard`, so only a request that brought
    the credential is forwarded."""

    @Request.application
    def app(request: Request) -> Response:
        url = (target() if callable(target) else target) + raw_path(request.environ,
                                                                     request.path)
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        skip = _HOP_BY_HOP | {"host"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        if push_token is not None:
            headers[PUSH_HEADER] = push_token.decode()
        try:
            upstream = session.request(request.method, url, headers=headers,
                                       data=request.get_data(), allow_redirects=False, timeout=60)
        except requests.RequestException:
            return _problem(502, "Bad Gateway", "the function process did not answer")
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
        return Response(upstream.content, status=upstream.status_code, headers=out_headers)

    return app


class RequestLog(ProblemRequestHandler):
    """The local server's handler: its own refusals as problem+json
    (:class:`ProblemRequestHandler`), and werkzeug's request line without its query string
    (a push endpoint's ``?token=``)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if "?" in self.requestline:
            self.requestline = f"{self.requestline.split('?', 1)[0]} {self.request_version}"
        super().log_request(code, size)
