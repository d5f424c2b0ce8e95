"""``GET /openapi.json``: the API's OpenAPI 3.1 document (public).

The document is ``openapi.json`` beside this module, kept in the repository and read once per
instance. ``tests/integration/test_openapi.py`` checks that it lists exactly the routes of
:data:`shared.api.routes.TABLE` and runs schemathesis against the in-process API with it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from flask import Response

PATH = Path(__file__).with_name("openapi.json")


@functools.cache
def document() -> bytes:
    """The document's bytes, read once (cached in memory)."""
    return PATH.read_bytes()


def serve(ctx: Any) -> Response:
    return Response(document(), status=200, mimetype="application/json")
