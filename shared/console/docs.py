"""``/api/docs``: the OpenAPI document (``/api/openapi.json``) in Swagger UI, and the console's
own static files.

The viewer's files come from the ``swagger-ui-bundle`` package (pinned in requirements.txt,
installed with the function: no CDN), served from ``/api/docs/vendor/``. The page's only
script of its own is ``static/docs.js``, so the strict Content-Security-Policy holds.
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


def _vendor_dir() -> Path:
    import swagger_ui_bundle

    return Path(str(swagger_ui_bundle.swagger_ui_path))


def page(p: Any) -> Response:
    return web.render(p.config, "docs.html", title="keyway API reference", who=p.who,
                      csrf=p.csrf)


def vendor(p: Any) -> Response:
    return _file(p, _vendor_dir(), p.params["name"], VENDOR_FILES)


def console_static(p: Any) -> Response:
    return _file(p, web.STATIC, p.params["name"], STATIC_FILES)


def _file(p: Any, folder: Path, name: str, allowed: tuple[str, ...]) -> Response:
    if name not in allowed:  # a fixed list: no path ever reaches the file system
        raise NotFound("no such file", key="console.not_found")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = Response((folder / name).read_bytes(), mimetype=kind)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
