"""``/api/docs``: the OpenAPI document (``/api/openapi.json``) in Swagger UI, and the console's
own static files.

The viewer is Swagger UI from the npm package ``swagger-ui-dist`` (pinned in
``viewer/package.json`` and its lock, installed by ``make`` with ``npm ci --ignore-scripts``);
its two files are copied into the api function's zip (:mod:`keyway.package`) and served from
``/api/docs/vendor/``: no CDN. The page's only script of its own is ``static/docs.js``, so the
strict Content-Security-Policy holds. Without the files (no ``npm ci`` yet) the page says so
and links the document itself.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from flask import Response

from shared.console import web
from shared.errors import NotFound

VENDOR_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")
STATIC_FILES = ("console.css", "result.js", "docs.js")


VIEWER = web.HERE / "viewer" / "node_modules" / "swagger-ui-dist"


def page(p: Any) -> Response:
    return web.render(p.config, "docs.html", title="keyway API reference", who=p.who,
                      csrf=p.csrf, viewer=all((VIEWER / n).is_file() for n in VENDOR_FILES))


def vendor(p: Any) -> Response:
    return _file(p, VIEWER, p.params["name"], VENDOR_FILES)


def console_static(p: Any) -> Response:
    return _file(p, web.STATIC, p.params["name"], STATIC_FILES)


def _file(p: Any, folder: Path, name: str, allowed: tuple[str, ...]) -> Response:
    if name not in allowed:  # a fixed list: no path ever reaches the file system
        raise NotFound("no such file", key="console.not_found")
    if not (folder / name).is_file():
        raise NotFound("the viewer is not installed here", key="console.not_found")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = Response((folder / name).read_bytes(), mimetype=kind)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
