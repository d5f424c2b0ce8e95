"""HTTP helpers shared by the provider endpoints: JSON answers, weak ETags and conditional
requests, bearer credentials, token-request parameters, the authorization redirect, and the
routing helpers of the server (route templates, ``%2F`` in a path segment, malformed bodies)."""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import Account, OAuthError

JSON_TYPE = "application/json; charset=utf-8"
API_PREFIX = re.compile(r"^/(?:api/v\d+|2\.0)(?=/)")  # dropped from templates: /repos/{owner}
RULE_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def json_response(payload: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A JSON response with the providers' ``application/json; charset=utf-8`` type."""
    return Response(json.dumps(payload), status=status, headers=headers or {},
                    content_type=JSON_TYPE)


def etag_of(body: bytes) -> str:
    """A weak validator over the representation, as GitHub and GitLab send."""
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def matches_etag(request: Request, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against ``etag``."""
    wanted = request.headers.get("If-None-Match", "")
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",") if tag.strip()}
    return "*" in tags or etag.removeprefix("W/") in tags


def conditional_json(request: Request, payload: Any, headers: dict[str, str]) -> Response:
    """200 with an ETag, or 304 without a body when ``If-None-Match`` matches it."""
    body = json.dumps(payload).encode()
    etag = etag_of(body)
    if matches_etag(request, etag):
        return Response(status=304, headers={**headers, "ETag": etag})
    return Response(body, headers={**headers, "ETag": etag}, content_type=JSON_TYPE)


def bearer_token(request: Request, schemes: Iterable[str] = ("bearer",)) -> str | None:
    """The credential of an ``Authorization: <scheme> <token>`` header, if the scheme fits."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in schemes:
        return None
    return value.strip() or None


def authorize_endpoint(authority: OAuthAuthority, request: Request) -> Response:
    """An authorization endpoint: 302 to the registered redirect URI (with ``code`` or
    ``error``), or a 400 page without any redirect when the client or URI is not trusted.
    With ``authority.sign_in_page`` and no known ``login`` in the request: the sign-in page."""
    if authority.sign_in_page and request.args.get("login") not in authority.accounts:
        return sign_in_page(authority, request)
    try:
        location = authority.authorize(request.args.to_dict())
    except OAuthError as e:
        page = f"<html><body><h1>Authorization failed</h1><p>{e.description}</p></body></html>"
        return Response(page, status=400, content_type="text/html; charset=utf-8")
    return Response(status=302, headers={"Location": location})


def sign_in_page(authority: OAuthAuthority, request: Request) -> Response:
    """The provider's sign-in page: one link per account, each the same authorization request
    with ``login`` added. No script, nothing cached."""
    def link(account: Account) -> str:
        query = urlencode({**request.args.to_dict(), "login": account.login})
        return (f'<li><a href="{html.escape(request.base_url + "?" + query)}">Sign in as '
                f"{html.escape(account.name)} ({html.escape(account.login)})</a></li>")

    links = "".join(link(a) for a in sorted(authority.accounts.values(), key=lambda a: a.id))
    page = ("<!doctype html><html><head><title>Sign in</title></head><body>"
            f"<h1>Sign in</h1><ul>{links}</ul></body></html>")
    return Response(page, content_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store",
                             "Content-Security-Policy": "default-src 'none'"})


def request_params(request: Request) -> dict[str, str]:
    """A token request's parameters from the query string, a form or a JSON body, with
    HTTP Basic client credentials as a fallback for ``client_id`` / ``client_secret``."""
    params = {**request.args.to_dict(), **request.form.to_dict()}
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items()})
    if request.authorization and request.authorization.type == "basic":
        params.setdefault("client_id", request.authorization.username or "")
        params.setdefault("client_secret", request.authorization.password or "")
    return params


ROUTE = "keyway.simulator.route"  # the environ key holding the matched route's template


def route_template(rule: str) -> str:
    """A routing rule as the providers document it: ``/api/v3/repos/<owner>/<repo>`` →
    ``/repos/{owner}/{repo}`` (API version prefix — ``/api/vN``, Bitbucket's ``/2.0`` —
    dropped, converters removed)."""
    return RULE_VARIABLE.sub(r"{\1}", API_PREFIX.sub("", rule))


def routing_path(environ: dict) -> str | None:
    """The path to route on when the raw request path encodes a slash inside a segment
    (GitLab's ``/projects/group%2Fproject``): each segment decoded, its slashes kept as
    ``%2F``. None when nothing is encoded (route on ``PATH_INFO``)."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    path = raw.split("?", 1)[0]
    if not path.startswith("/") or "%2f" not in path.lower():
        return None
    return "/".join(unquote(part).replace("/", "%2F") for part in path.split("/"))


def raw_base_url(request: Request) -> str:
    """``request.base_url`` with the path exactly as the client sent it (``%2F`` kept), so
    pagination links to ``/projects/group%2Fproject/...`` still route."""
    raw = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "")
    path = raw.split("?", 1)[0]
    return request.host_url.rstrip("/") + path if path.startswith("/") else request.base_url


def truncated(response: Response) -> Response:
    """``response`` as a 200 with its JSON body cut in half and no validator."""
    body = response.get_data() or b'[{"id": 1, "title": "'
    cut = Response(body[:max(len(body) // 2, 1)], status=200, content_type=JSON_TYPE)
    for name, value in response.headers.items():
        if name.lower() not in ("etag", "content-length", "content-type"):
            cut.headers[name] = value
    return cut
