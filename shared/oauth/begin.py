"""``/oauth-<provider>/start``: the start step, which binds an OAuth flow to one browser.

The api's ``authorize_url`` points here (:func:`shared.oauth.start.start_url`). This step
sets a cookie holding a fresh browser secret, stores the secret's SHA-256 on the state record
(:mod:`shared.oauth.flowcookie`, :func:`shared.oauth.state.bind`) and answers ``302`` to the
provider's authorize URL that :mod:`shared.oauth.start` built and stored, now with the state.
The callback then accepts the state only from the browser holding that cookie.

* ``GET ?state=…`` binds an app flow (an admin's connection). For an identity link (kind
  ``personal``) it renders a small form instead (:func:`shared.oauth.pages.sign_in_form`).
* ``POST`` (``application/x-www-form-urlencoded``, fields ``state`` and ``access_token``, the
  RFC 6750 §2.2 form-encoded bearer token) proves the user: the token is verified exactly as
  the api verifies it (:mod:`shared.api.authn`) and its tenant and user must be the flow's.
  An identity link is bound only this way; an app flow accepts it too.

Refusals are plain HTML pages (:func:`shared.oauth.pages.refusal`) with one stable key each,
logged without the state, the token or any cookie value, and nothing is bound:

* unknown, expired, used or another provider's state → 400 ``oauth.invalid_state``;
* the flow already bound to another browser (a second browser on the same start URL) → 409
  ``oauth.flow_already_bound``; the same browser again is sent on to the provider;
* a missing or invalid access token → 403 ``oauth.start_unauthenticated``; a token of another
  user or tenant → 403 ``oauth.start_wrong_user``;
* a POST whose ``Origin`` is neither keyway's public URL nor the configured frontend's → 403
  ``oauth.start_foreign_origin`` (another site cannot post its own token into your browser);
* an access token in the URL → 400 ``oauth.token_in_url``; a body that is not a form → 415
  ``oauth.start_not_form``; over 16 KiB or without a length → 413/400
  ``oauth.start_too_large`` / ``oauth.bad_start_request``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Response, redirect

from shared.api.authn import verifier
from shared.auth.principal import Unauthenticated
from shared.config import Config
from shared.errors import InvalidInput, KeywayError, PermanentError
from shared.log import get_logger
from shared.oauth import flowcookie, pages, state
from shared.ports import Ports

log = get_logger("keyway.oauth")
MAX_FORM_BYTES = 16 * 1024
FORM = "application/x-www-form-urlencoded"


class Unproven(PermanentError):
    status, key, title = 403, "oauth.start_unauthenticated", "Your sign-in could not be confirmed"


class WrongUser(PermanentError):
    status, key, title = 403, "oauth.start_wrong_user", "This link belongs to another user"


class ForeignOrigin(PermanentError):
    status, key, title = 403, "oauth.start_foreign_origin", "This form was sent by another site"


class BadStart(InvalidInput):
    key, title = "oauth.bad_start_request", "This start request is not valid"


class TokenInUrl(InvalidInput):
    key, title = "oauth.token_in_url", "An access token does not belong in a URL"


class NotForm(PermanentError):
    status, key, title = 415, "oauth.start_not_form", "The start step takes a form post"


class TooLarge(PermanentError):
    status, key, title = 413, "oauth.start_too_large", "The form is too large"


def start_step(ports: Ports, config: Config, provider: str, request: Any) -> Response:
    """Answer a GET or POST of ``/oauth-<provider>/start`` (see the module docstring)."""
    try:
        return _start(ports, config, provider, request)
    except KeywayError as e:
        log.warning(e.key, extra={"fields": {"provider": provider, "method": request.method}})
        return pages.refusal(e)


def _start(ports: Ports, config: Config, provider: str, request: Any) -> Response:
    if "access_token" in request.args:
        raise TokenInUrl("send the access token in the form body, never in the URL")
    posted = request.method == "POST"
    given, token = _form(config, request) if posted else (request.args.get("state"), None)
    flow = state.peek(ports, given, provider)
    value = given or ""  # peek refused an empty state
    if not flow.provider_url:  # a flow stored without its authorize URL cannot go on
        raise state.InvalidState("this flow has no start step; start again")
    if posted:
        _prove(ports, config, flow, token)
    elif flow.kind == "personal":
        action = f"{config.public_url}/oauth-{provider}/start"
        return pages.sign_in_form(action, value, provider)
    secret = flowcookie.new_secret()
    fresh = state.bind(ports, value, provider, flowcookie.digest(secret),
                       flowcookie.presented(config, value, request.cookies))
    separator = "&" if "?" in flow.provider_url else "?"
    response = redirect(f"{flow.provider_url}{separator}{urlencode({'state': value})}", 302)
    if fresh:
        flowcookie.set_cookie(config, response, value, secret, request.cookies)
    log.info("oauth.flow_bound" if fresh else "oauth.flow_resumed", extra={"fields": {
        "provider": provider, "kind": flow.kind, "tenant": flow.tenant}})
    return pages.harden(response)


def _form(config: Config, request: Any) -> tuple[str | None, str | None]:
    """``(state, access_token)`` from a same-site form post (see the module docstring)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {_origin(config.public_url),
                                             _origin(config.frontend_url)}:
        raise ForeignOrigin("post this form from keyway or the configured frontend")
    if request.mimetype != FORM:
        raise NotForm(f"send {FORM} with the fields state and access_token")
    if request.content_length is None:
        raise BadStart("a form post needs a Content-Length")
    if request.content_length > MAX_FORM_BYTES:
        raise TooLarge(f"the form is over {MAX_FORM_BYTES} bytes")
    return request.form.get("state"), request.form.get("access_token") or None


def _prove(ports: Ports, config: Config, flow: state.PendingFlow, token: str | None) -> None:
    """The access token is valid and names the flow's own tenant and user."""
    try:
        principal = verifier(config, ports.clock).verify(f"Bearer {token or ''}")
    except Unauthenticated:
        principal = None
    if principal is None:  # raised outside the except block: no chained cause
        raise Unproven("sign in to keyway again and use a current access token")
    if (principal.tenant, principal.user) != (flow.tenant, flow.user):
        raise WrongUser("only the user who asked for this link can open it")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
