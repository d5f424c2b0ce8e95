"""Signing in to the console and out of it (:mod:`shared.console.session`).

``GET /console/login`` shows, in local mode, a form that signs a sandbox user in with the
local issuer (tenant, user, role), and in every mode a form that takes a product's access
token. ``POST /console/login`` sets the session cookie and goes on to the connections (a page
that refreshes to them: see :func:`login`); a bad
tenant or user id, a role that is not ``admin`` or ``member``, the local form outside local
mode or a token that does not verify → a plain page (400/403/401), no cookie set.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect

from shared.auth.principal import ROLES, Unauthenticated
from shared.console import session, web
from shared.errors import Forbidden, InvalidInput, KeywayError


class SignedOut(KeywayError):
    status, key, title = 401, "console.signed_out", "Please sign in"


class NotSignedIn(KeywayError):
    status, key, title = 401, "console.sign_in_failed", "Sign-in failed"


def home(page: Any) -> Response:
    return page.go("/console/connections" if page.who else "/console/login")


def login_page(page: Any) -> Response:
    return page.render("login.html", title="Sign in to keyway",
                       local=page.config.local_mode, roles=ROLES)


def login(page: Any) -> Response:
    form, config = page.request.form, page.config
    token = form.get("access_token") or ""
    if token:
        try:
            session.verified(config, page.ports.clock, token)
        except Unauthenticated:
            raise NotSignedIn("this access token was not accepted; get a current one from "
                              "your application") from None
    else:
        if not config.local_mode:
            raise Forbidden("sandbox users exist only in local mode; sign in through your "
                            "application", key="console.local_only")
        role = form.get("role") or ""
        if role not in ROLES:
            raise InvalidInput("role must be admin or member", key="console.bad_sign_in")
        try:
            token = session.local_token(config, page.ports.clock, form.get("tenant") or "",
                                        form.get("user") or "", role)
        except InvalidInput as e:
            raise InvalidInput(e.detail or "tenant and user must be ids without spaces",
                               key="console.bad_sign_in") from None
    # A page, not a redirect: after a post from a product's page (another site) a redirect
    # would still be cross-site, and the browser would hold back the SameSite=Strict cookie;
    # the page's own refresh is a same-site navigation.
    response = web.render(config, "signed_in.html", title="Signed in", who=None, csrf="",
                          next=f"{web.mount(config)}/console/connections")
    session.sign_in(config, response, token)
    return response


def logout(page: Any) -> Response:
    response = redirect(f"{web.mount(page.config)}/console/login", code=303)
    session.sign_out(page.config, response)
    return response
