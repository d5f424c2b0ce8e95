"""The connect pages: choose a provider (or a registered self-hosted host) and start the app
connection (admins) or the personal identity link; the result page; the identities page.

Starting goes through the API's handlers (``POST /v1/connections`` or ``/v1/identities``,
``POST /v1/connections/{id}/reauthorize``) and then through oauth-P's own start step
(:func:`shared.oauth.begin.start_step`), in-process, with the session's token as the step's
form-posted proof: the flow is bound to this browser by its ``keyway-flow-…`` cookie and the
browser goes straight on to the provider. The token never reaches the page.

The result page (where ``/api/v1/connect-result`` sends a browser) says in words what
happened: denied, an error with its stable reason, or a success. A success is stated only once
the signed-in user can read it (:func:`_confirmed`: the connection, this tenant's and active,
with its provider account; or the linked identity); signed in but unreadable, the page says
the result could not be confirmed (status ``unconfirmed``); signed out, that the provider
reported success and that signing in shows the connection. Opened as a popup
(``window.opener`` set), its script posts ``{"type": "keyway.connect_result", "provider",
"kind", "status", "reason", "connection", "identity", "confirmed"}`` (``confirmed``: true only
for a success the page read) to the opener with a target origin that is one of
``KEYWAY_CONSOLE_ORIGINS`` (the one the connect page was opened for, else the first; never
``"*"``), then closes; not on a page about to refresh itself once (signed out), which would
post before the session is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Response
from werkzeug.datastructures import MultiDict

from shared.api import connections as api_connections
from shared.api import hosts as api_hosts
from shared.api import identities as api_identities
from shared.api import reads, routes
from shared.console import session
from shared.console.calls import ok
from shared.errors import InvalidInput, KeywayError
from shared.oauth.begin import FORM, start_step
from shared.providers import registry

OPENER = "keyway-console-opener"
STATUSES = ("connected", "denied", "error")
_KEY = re.compile(r"^[a-z0-9_.]{1,80}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
WORDS = {  # a reason's stable key → what it means, in words
    "provider_unavailable": "the provider did not answer; try again in a few minutes",
    "oauth.same_account_required": "re-authorize with the same provider account",
    "oauth.duplicate_account": "this provider account is already connected",
    "oauth.code_rejected": "the provider refused the sign-in code; start again",
    "github_app.not_your_installation": "you cannot access this GitHub App installation",
}


def _ok(page: Any, handler: Any, **kwargs: Any) -> Any:
    return ok(page.ports, page.config, page.who, handler, **kwargs)


def choose(page: Any) -> Response:
    opener = page.request.args.get("opener") or ""
    return page.render("connect.html", flow_forms=True, title="Connect a provider",
                       providers=registry.enabled(), hosts=_ok(page, api_hosts.list_hosts)["items"],
                       admin=page.who.role == "admin",
                       opener=opener if opener in page.config.console_origins else "")


def identities(page: Any) -> Response:
    items = _ok(page, api_identities.list_identities)["items"]
    return page.render("identities.html", flow_forms=True, title="Your linked accounts",
                       items=items, providers=registry.enabled())


def begin(page: Any) -> Response:
    form = page.request.form
    provider, kind = form.get("provider") or "", form.get("kind") or ""
    body: dict[str, Any] = {"provider": provider}
    if form.get("base_url"):
        body["base_url"] = form["base_url"]
    if kind == "app":
        if form.get("github_app") == "true":
            body["github_app"] = True
        started = _ok(page, routes.create_connection, body=body)
    elif kind == "personal":
        started = _ok(page, routes.create_identity, body=body)
    else:
        raise InvalidInput("choose a connection or a personal link", key="console.bad_kind")
    response = _through_start(page, provider, started["authorize_url"])
    opener = form.get("opener") or ""
    if opener in page.config.console_origins and response.status_code == 302:
        response.set_cookie(OPENER, opener, max_age=600, path="/", httponly=True,
                            secure=page.config.public_url.startswith("https://"),
                            samesite="Lax")  # comes back after the provider's redirect
    return response


def reauthorize(page: Any) -> Response:
    connection = page.params["connection"]
    started = _ok(page, api_connections.reauthorize, params={"connection": connection})
    provider = _ok(page, reads.get_connection, params={"connection": connection})["provider"]
    return _through_start(page, provider, started["authorize_url"])


@dataclass
class _StartPost:
    """oauth-P's start step as this browser's form post would reach it (same origin)."""
    form: MultiDict
    cookies: Any
    args: MultiDict = field(default_factory=MultiDict)
    headers: dict = field(default_factory=dict)
    method: str = "POST"
    mimetype: str = FORM
    content_length: int = 0


def _through_start(page: Any, provider: str, authorize_url: str) -> Response:
    value = (parse_qs(urlsplit(authorize_url).query).get("state") or [""])[0]
    token = session.token(page.config, page.request.cookies)
    request = _StartPost(MultiDict({"state": value, "access_token": token}),
                         page.request.cookies, content_length=1)
    return start_step(page.ports, page.config, provider, request)


def result(page: Any) -> Response:
    args = page.request.args
    if args.get("status") not in STATUSES or args.get("provider") not in registry.load():
        return page.render("result.html", 400, title="No connect result", outcome=None)
    outcome = {"type": "keyway.connect_result", "provider": args["provider"],
               "kind": "personal" if args.get("kind") == "personal" else "app",
               "status": args["status"],
               "reason": args.get("reason") if _KEY.match(args.get("reason") or "") else None,
               "connection": args.get("connection")
               if _ID.match(args.get("connection") or "") else None,
               "identity": "linked" if args.get("identity") == "linked" else None,
               "confirmed": False}
    found = _confirmed(page, outcome) if page.who and outcome["status"] == "connected" else None
    if found is not None:
        outcome["confirmed"] = True
    elif page.who and outcome["status"] == "connected":
        outcome["status"] = "unconfirmed"
    opener = page.request.cookies.get(OPENER)
    target = opener if opener in page.config.console_origins else page.config.console_origins[0]
    name = registry.get(outcome["provider"]).display_name
    # Signed out as far as this request shows: the provider's redirect chain is cross-site, so
    # the SameSite=Strict session cookie stayed behind; one same-site refresh brings it.
    kept = {k: v for k, v in outcome.items() if v and k not in ("type", "confirmed")}
    hop = None if page.who or args.get("hop") else \
        f"/console/connect/result?{urlencode({**kept, 'hop': '1'})}"
    return page.render("result.html", title=_title(outcome), outcome=outcome,
                       account=(found or {}).get("account"),
                       first_sync=((found or {}).get("sync") or {}).get("state") == "never",
                       provider_name=name, target_origin=target, hop=hop,
                       explained=WORDS.get(outcome["reason"] or ""))


def _title(outcome: dict[str, Any]) -> str:
    personal = outcome["kind"] == "personal"
    if outcome["status"] == "connected" and outcome["confirmed"]:
        return "Account linked" if personal else "Connected"
    if outcome["status"] == "connected":
        return "Link reported" if personal else "Connection reported"
    if outcome["status"] == "unconfirmed":
        return "Result not confirmed"
    return "Access denied" if outcome["status"] == "denied" else "Connection failed"


def _confirmed(page: Any, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The connection (this tenant's, active) or identity (linked) a successful flow named, as
    the signed-in user reads it; None when it cannot be read — another tenant's or a missing
    id, a token without ``connections:read``, someone else signed in — so the page never
    states a success from its query alone."""
    try:
        if outcome["kind"] == "app":
            if not outcome["connection"]:
                return None
            found = _ok(page, reads.get_connection, params={"connection": outcome["connection"]})
            return found if found.get("status") == "active" else None
        for item in _ok(page, api_identities.list_identities)["items"]:
            if item["provider"] == outcome["provider"] and item.get("status") != "unlinking":
                return item
    except KeywayError:  # the API's own refusals (NotFound, Forbidden) as well as ApiRefused
        return None
    return None
