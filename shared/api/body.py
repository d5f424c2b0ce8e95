"""Request input discipline for the ``api``: size caps and strict JSON bodies.

Every request, in this order (``shared.api.app.handle``):

1. the URI (path and query) is at most :data:`MAX_URI_BYTES` → else 414 ``api.uri_too_long``;
2. the body is at most ``KEYWAY_API_MAX_BODY_BYTES`` (1 MiB by default) → else 413
   ``api.too_large``: a declared ``Content-Length`` above the cap is refused before a byte is
   read, and a chunked body (or one longer than it says) is read up to one byte past the
   cap and no further (:func:`shared.webhooks.body.read_capped`); a body shorter than its
   ``Content-Length`` → 400 ``input.truncated``.

Then a route that takes a JSON body calls :func:`json_object`:

3. a non-empty body must be ``application/json`` (or ``…+json``) → else 415
   ``api.unsupported_media_type``;
4. it must parse as one JSON object (UTF-8, no ``NaN``/``Infinity``, nesting at most
   :data:`MAX_DEPTH` deep) → else 400 ``input.invalid_json`` or ``input.too_deep``, never a 500;
5. every field must be one the route knows → else 400 ``input.unknown_field`` naming it.

Nothing is stored or published before these checks pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import ClientDisconnected

from shared.errors import InvalidInput, PermanentError
from shared.webhooks.body import read_capped

MAX_URI_BYTES = 8192  # below the local server's 65536-byte request line
MAX_DEPTH = 32
_NAME_SHOWN = 64


class UriTooLong(PermanentError):
    status, key, title = 414, "api.uri_too_long", "URI too long"


class PayloadTooLarge(PermanentError):
    status, key, title = 413, "api.too_large", "Payload too large"


class Truncated(InvalidInput):
    key, title = "input.truncated", "Truncated body"


#: Errors after which the body cannot (or must not) be read on: their answer is streamed.
UNREAD = (PayloadTooLarge, Truncated)


class UnsupportedMediaType(PermanentError):
    status, key, title = 415, "api.unsupported_media_type", "Unsupported media type"


def check_uri(request: Any) -> None:
    size = len(request.path.encode("utf-8", "replace")) + len(request.query_string or b"")
    if size > MAX_URI_BYTES:
        raise UriTooLong(f"the URI exceeds {MAX_URI_BYTES} bytes")


def read(request: Any, cap: int) -> bytes:
    """The whole body under ``cap`` (see the module docstring)."""
    try:
        body = read_capped(request.stream, request.content_length, cap)
    except ClientDisconnected:
        raise Truncated("the body is shorter than its Content-Length") from None
    if body is None:
        raise PayloadTooLarge(f"the body exceeds {cap} bytes")
    return body


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return False
                stack.append((child, depth + 1))
    return True


def _parse(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_constant)
    except RecursionError:
        raise InvalidInput(f"the body is nested more than {MAX_DEPTH} deep",
                           key="input.too_deep") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the body is not valid JSON", key="input.invalid_json") from None
    if not _depth_ok(value):
        raise InvalidInput(f"the body is nested more than {MAX_DEPTH} deep",
                           key="input.too_deep")
    return value


def is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def json_object(request: Any, raw: bytes, fields: Iterable[str],
                *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object with only ``fields``; ``{}`` for an empty body when not
    ``required``."""
    if not raw and not required:
        return {}
    if raw and not is_json(request.mimetype or ""):
        raise UnsupportedMediaType("send the body as application/json")
    value = _parse(raw) if raw else None
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown field: {unknown[0][:_NAME_SHOWN]}",
                           key="input.unknown_field")
    return value
