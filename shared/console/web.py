"""Rendering and the headers every console answer carries.

Templates are Flask's own Jinja2 with autoescaping on; pages hold no inline script or style
(the Content-Security-Policy below forbids both), so the few scripts are files under
``static/``. Every answer but a static file (:mod:`shared.console.docs`) is ``Cache-Control:
no-store`` (pages hold tenant data), never sniffed, sends no referrer to other sites
(``same-origin``: with ``no-referrer`` a browser sends ``Origin: null`` on the forms' posts)
and may be framed only by keyway itself and the configured console origins
(``KEYWAY_CONSOLE_ORIGINS``). ``form-action 'self'`` is left
out only on pages whose forms start an OAuth flow: browsers apply ``form-action`` to the
redirects after a post too, and those go on to the provider.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from flask import Response

from shared.config import Config

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=True)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def mount(config: Config) -> str:
    """The api's path on keyway's public URL (``/api``): every console link starts here."""
    return urlsplit(config.public_url).path.rstrip("/") + "/api"


def csp(config: Config, *, flow_forms: bool = False) -> str:
    ancestors = " ".join(["'self'", *config.console_origins])
    policy = ["default-src 'self'", "script-src 'self'", "style-src 'self'",
              "img-src 'self' data:", "connect-src 'self'", "object-src 'none'",
              "base-uri 'none'", f"frame-ancestors {ancestors}"]
    if not flow_forms:
        policy.append("form-action 'self'")
    return "; ".join(policy)


def harden(config: Config, response: Response, *, flow_forms: bool = False) -> Response:
    response.headers["Content-Security-Policy"] = csp(config, flow_forms=flow_forms)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make Origin null
    response.headers["Cross-Origin-Opener-Policy"] = "unsafe-none"  # popups reach their opener
    return response


def render(config: Config, template: str, status: int = 200, *, flow_forms: bool = False,
           **context: Any) -> Response:
    page = _env().get_template(template).render(base=mount(config), **context)
    response = Response(page, status=status, mimetype="text/html")
    return harden(config, response, flow_forms=flow_forms)


def refusal(config: Config, status: int, title: str, detail: str, key: str,
            **context: Any) -> Response:
    """A plain page saying what went wrong, with its stable key (never a secret)."""
    return render(config, "error.html", status, title=title, detail=detail, key=key,
                  **{"who": None, "csrf": "", **context})
