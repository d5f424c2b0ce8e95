"""The console's sign-in: a session cookie holding a short-lived bearer token, and the CSRF
token every form carries.

* Session cookie ``keyway-console`` (``__Host-keyway-console`` when ``KEYWAY_PUBLIC_URL`` is
  https, then also ``Secure``): ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, ``Max-Age`` at
  most :data:`TTL`. Its value is a bearer token verified on every request exactly as the api
  verifies an ``Authorization`` header (:mod:`shared.api.authn`); it is never rendered into a
  page, logged or sent anywhere else.
* Local mode signs a sandbox user in with the local issuer (tenant, user, role → a token of
  :data:`TTL`). In any mode a product may post its own user's access token instead (the field
  ``access_token``, RFC 6750 §2.2), from keyway's origin or a configured console origin.
* CSRF: double-submit. A random value in the cookie ``keyway-console-csrf`` (``HttpOnly``,
  ``SameSite=Strict``) is also the hidden ``csrf`` field of every form; a POST whose field is
  missing or differs (compared in constant time) is refused with a 403 page
  (``console.csrf_failed``) before anything is read or changed. Signing in and out rotate it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Response

from shared.api.authn import local_issuer, verifier
from shared.auth.principal import Principal, Unauthenticated
from shared.config import Config
from shared.errors import Forbidden
from shared.ports import Clock

TTL = 3600
SESSION, CSRF = "keyway-console", "keyway-console-csrf"
_MAX_VALUE = 8192


class CsrfFailed(Forbidden):
    key, title = "console.csrf_failed", "This form could not be accepted"


def _secure(config: Config) -> bool:
    return config.public_url.startswith("https://")


def _name(config: Config, base: str) -> str:
    return f"__Host-{base}" if _secure(config) else base


def principal(config: Config, clock: Clock, cookies: Any) -> Principal | None:
    """The signed-in user, or None without a valid session cookie."""
    token = cookies.get(_name(config, SESSION))
    if not token or len(token) > _MAX_VALUE:
        return None
    try:
        return verifier(config, clock).verify(f"Bearer {token}")
    except Unauthenticated:
        return None


def local_token(config: Config, clock: Clock, tenant: str, user: str, role: str) -> str:
    """A sandbox user's token from the local issuer (local mode only: the caller checks)."""
    return local_issuer(config, clock).issue(tenant, user, role, ttl=TTL)


def verified(config: Config, clock: Clock, token: str) -> Principal:
    """The principal of a posted access token (``Unauthenticated`` when it is not valid)."""
    return verifier(config, clock).verify(f"Bearer {token}")


def sign_in(config: Config, response: Response, token: str) -> None:
    response.set_cookie(_name(config, SESSION), token, max_age=TTL, path="/",
                        secure=_secure(config), httponly=True, samesite="Strict")
    rotate_csrf(config, response)


def sign_out(config: Config, response: Response) -> None:
    response.delete_cookie(_name(config, SESSION), path="/", secure=_secure(config),
                           httponly=True, samesite="Strict")
    rotate_csrf(config, response)


def csrf_value(config: Config, cookies: Any) -> str | None:
    value = cookies.get(_name(config, CSRF))
    return value if value and 20 <= len(value) <= 128 else None


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def rotate_csrf(config: Config, response: Response, value: str | None = None) -> str:
    value = value or new_csrf()
    response.set_cookie(_name(config, CSRF), value, path="/", secure=_secure(config),
                        httponly=True, samesite="Strict")
    return value


def check_csrf(config: Config, cookies: Any, form: Any) -> None:
    """Refuse a POST whose ``csrf`` field does not match the cookie (see the module doc)."""
    held, sent = csrf_value(config, cookies), form.get("csrf") or ""
    if not held or not hmac.compare_digest(held.encode(), sent.encode()):
        raise CsrfFailed("the form's security token is missing or does not match; reload "
                         "the page and try again — nothing was changed")


def token(config: Config, cookies: Any) -> str:
    """The session's bearer token, for in-process proof only (never rendered or logged)."""
    return cookies.get(_name(config, SESSION)) or ""
