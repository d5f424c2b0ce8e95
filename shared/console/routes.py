"""The console's routing table and the checks every page passes, in this order:

1. the route (unknown → 404 page, wrong method → 405 page with ``Allow``);
2. a POST: ``application/x-www-form-urlencoded`` (else 415), at most :data:`MAX_FORM_BYTES`
   (else 413), an ``Origin`` (when sent) that is keyway's or a console origin (else 403
   ``console.foreign_origin``), and the CSRF field matching its cookie (else 403
   ``console.csrf_failed``, :mod:`shared.console.session`) — nothing is read or changed before.
   The one post a product's own page makes, the sign-in, needs no CSRF field when its
   ``Origin`` is one of ``KEYWAY_CONSOLE_ORIGINS`` other than keyway's (that page cannot read
   keyway's cookie; the origin check stands in);
3. the session: a page that needs one without it → the sign-in page (GET) or 401;
4. the page; a ``KeywayError`` from the API's handlers becomes a plain page with its status,
   title and stable key (another tenant's connection: 404 like a missing one).

Every answer but a static file then carries the headers of :func:`shared.console.web.harden`
(pages get them from :func:`~shared.console.web.render`, which knows whether their forms start
a flow; redirects get them here) and the CSRF cookie. A static file (:data:`STATIC`) is
cacheable by shared caches, so it carries no cookie: one cached answer would hand every
visitor the same CSRF value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, redirect

from shared import bootstrap
from shared.auth.principal import Principal
from shared.config import Config
from shared.console import connect, docs, operations, session, signin, web
from shared.errors import KeywayError
from shared.log import get_logger
from shared.ports import Ports

log = get_logger("keyway.console")
MAX_FORM_BYTES = 16 * 1024
FORM = "application/x-www-form-urlencoded"


@dataclass
class Page:
    ports: Ports
    config: Config
    request: Any
    who: Principal | None
    csrf: str
    params: dict[str, str]

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return web.render(self.config, template, status, who=self.who, csrf=self.csrf,
                          **context)

    def go(self, path: str) -> Response:
        """303 to a console path (after a POST: the browser GETs the page)."""
        return redirect(f"{web.mount(self.config)}{path}", code=303)


Handler = Callable[[Page], Response]
_C = "(?P<connection>[^/]+)"
TABLE: list[tuple[str, str, Handler, bool]] = [  # method, path, handler, needs a session
    ("GET", "/console", signin.home, False),
    ("GET", "/console/login", signin.login_page, False),
    ("POST", "/console/login", signin.login, False),
    ("POST", "/console/logout", signin.logout, False),
    ("GET", "/console/connections", operations.connections, True),
    ("GET", f"/console/connections/{_C}", operations.connection, True),
    ("POST", f"/console/connections/{_C}/sync", operations.sync_now, True),
    ("POST", f"/console/connections/{_C}/reauthorize", connect.reauthorize, True),
    ("POST", f"/console/connections/{_C}/disconnect", operations.disconnect, True),
    ("POST", f"/console/connections/{_C}/comment", operations.comment, True),
    ("GET", "/console/actions", operations.actions, True),
    ("GET", "/console/subscriptions", operations.subscriptions, True),
    ("POST", "/console/subscriptions", operations.subscribe, True),
    ("POST", "/console/subscriptions/(?P<subscription>[^/]+)/delete", operations.unsubscribe,
     True),
    ("GET", "/console/identities", connect.identities, True),
    ("GET", "/console/connect", connect.choose, True),
    ("POST", "/console/connect", connect.begin, True),
    ("GET", "/console/connect/result", connect.result, False),
    ("GET", "/console/static/(?P<name>[^/]+)", docs.console_static, False),
    ("GET", "/docs", docs.page, False),
    ("GET", "/docs/vendor/(?P<name>[^/]+)", docs.vendor, False),
]
_ROUTES = [(m, re.compile(f"^{p}/?$"), h, s) for m, p, h, s in TABLE]
STATIC: tuple[Handler, ...] = (docs.console_static, docs.vendor)  # no cookie, see above


def dispatch(ports: Ports, request: Any) -> Response:
    config = bootstrap.config()
    held = session.csrf_value(config, request.cookies)
    csrf = held or session.new_csrf()
    handler: Handler | None = None
    try:
        handler, params, needs_session = _match(request.method, request.path)
        if request.method == "POST":
            _check_post(config, request)
        who = session.principal(config, ports.clock, request.cookies)
        page = Page(ports, config, request, who, csrf, params)
        if needs_session and who is None:
            response = _sign_in_first(page)
        else:
            response = handler(page)
    except KeywayError as e:
        log.info(e.key, extra={"fields": {"component": "api", "path": request.path[:200]}})
        response = web.refusal(config, e.status, e.title, e.detail or e.title, e.key)
        if isinstance(e, NotAllowed):
            response.headers["Allow"] = ", ".join(e.allowed)
    except Exception as e:  # noqa: BLE001 — never a traceback: a stable key and the class
        log.error("console.unexpected", extra={"fields": {"error": type(e).__name__,
                                                          "path": request.path[:200]}})
        response = web.refusal(config, 500, "Something went wrong",
                               "the page could not be shown", "keyway.error")
    if handler in STATIC:
        return response
    if "Content-Security-Policy" not in response.headers:  # a redirect: not rendered
        web.harden(config, response)
    if not held and not any(session.CSRF in c for c in response.headers.getlist("Set-Cookie")):
        session.rotate_csrf(config, response, csrf)
    return response


def _sign_in_first(page: Page) -> Response:
    if page.request.method == "GET":
        return page.go("/console/login")
    raise signin.SignedOut("your console session has ended; sign in again — nothing was "
                           "changed")


class NotFoundPage(KeywayError):
    status, key, title = 404, "console.not_found", "Page not found"


class NotAllowed(KeywayError):
    status, key, title = 405, "console.method_not_allowed", "Method not allowed"

    def __init__(self, detail: str, allowed: list[str]) -> None:
        super().__init__(detail)
        self.allowed = allowed


class BadForm(KeywayError):
    status, key, title = 415, "console.not_form", "This page takes a form"


class FormTooLarge(KeywayError):
    status, key, title = 413, "console.form_too_large", "The form is too large"


class ForeignOrigin(KeywayError):
    status, key, title = 403, "console.foreign_origin", "This form was sent by another site"


def _match(method: str, path: str) -> tuple[Handler, dict[str, str], bool]:
    allowed = []
    for route_method, pattern, handler, needs_session in _ROUTES:
        found = pattern.match(path)
        if found:
            if route_method == method:
                return handler, found.groupdict(), needs_session
            allowed.append(route_method)
    if allowed:
        raise NotAllowed(f"{method[:16]} is not allowed on this page", sorted(set(allowed)))
    raise NotFoundPage("there is no console page at this address")


def _check_post(config: Config, request: Any) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {web.origin(config.public_url),
                                             *config.console_origins}:
        raise ForeignOrigin("post this form from keyway's own pages — nothing was changed")
    if request.mimetype != FORM:
        raise BadForm(f"send {FORM} — nothing was changed")
    if request.content_length is None or request.content_length > MAX_FORM_BYTES:
        raise FormTooLarge(f"a form is at most {MAX_FORM_BYTES} bytes — nothing was changed")
    if not (request.path.rstrip("/") == "/console/login" and origin in config.console_origins
            and origin != web.origin(config.public_url)):
        session.check_csrf(config, request.cookies, request.form)  # see the module docstring
