"""The browser secret that binds an OAuth flow to the browser that started it (RFC 9700 §4.7).

The start step sets one cookie per flow holding 256 fresh random bits; the state record keeps
only their SHA-256 (:func:`shared.oauth.state.bind`). The callback accepts a state only with
the cookie whose hash matches, compared in constant time.

Name: ``__Host-keyway-flow-<id>`` when ``KEYWAY_PUBLIC_URL`` is https (``Secure``, no
``Domain``, ``Path=/``), ``keyway-flow-<id>`` in local http mode (no ``Secure``: a browser
keeps no ``Secure`` or ``__Host-`` cookie from plain http). Always ``HttpOnly``,
``SameSite=Lax`` (sent on the provider's top-level redirect back to the callback, never on a
cross-site subrequest) and ``Max-Age`` the state's TTL. ``<id>`` is 16 hex characters of a
hash of the state, so flows in parallel in one browser each have their own cookie; at most
:data:`MAX_PARALLEL` at once — a start step that finds more expires the others. The callback
expires its flow's cookie whatever the outcome. Cookie values are never logged or rendered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from flask import Response

from shared.config import Config
from shared.oauth import state

BASE_NAME = "keyway-flow-"
SECURE_PREFIX = "__Host-"
MAX_PARALLEL = 8
_MAX_VALUE = 128


def _secure(config: Config) -> bool:
    return config.public_url.startswith("https://")


def name(config: Config, value: str) -> str:
    """The cookie name for the flow whose state is ``value``."""
    flow_id = hashlib.sha256(b"keyway-flow:" + value.encode()).hexdigest()[:16]
    return f"{SECURE_PREFIX if _secure(config) else ''}{BASE_NAME}{flow_id}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented(config: Config, value: str, cookies: Mapping[str, str]) -> str | None:
    """The SHA-256 of the cookie this browser holds for the flow, or None without one."""
    secret = cookies.get(name(config, value))
    return digest(secret) if secret and len(secret) <= _MAX_VALUE else None


def matches(config: Config, value: str, flow: state.PendingFlow,
            cookies: Mapping[str, str]) -> bool:
    """Whether the browser holds the cookie the flow was bound to (a flow never bound: no)."""
    held = presented(config, value, cookies)
    return bool(flow.binding and held and hmac.compare_digest(flow.binding, held))


def set_cookie(config: Config, response: Response, value: str, secret: str,
               cookies: Mapping[str, str]) -> None:
    """Set the flow's cookie; beyond :data:`MAX_PARALLEL` flow cookies, expire the others."""
    own = name(config, value)
    others = [n for n in cookies if n != own and _is_flow_cookie(n)]
    if len(others) >= MAX_PARALLEL:
        for other in others:
            forget(config, response, other)
    response.set_cookie(own, secret, max_age=int(state.TTL.total_seconds()), path="/",
                        secure=_secure(config), httponly=True, samesite="Lax")


def forget(config: Config, response: Response, cookie_name: str) -> None:
    response.delete_cookie(cookie_name, path="/", secure=_secure(config), httponly=True,
                           samesite="Lax")


def _is_flow_cookie(cookie_name: str) -> bool:
    return cookie_name.removeprefix(SECURE_PREFIX).startswith(BASE_NAME)
