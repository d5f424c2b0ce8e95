"""The metadata-only provider client (promises 5 and 6): every provider request goes through it.

Every client is built for one purpose (``purpose=``, required: ``fetch``, ``act``, ``oauth`` or
``unhook``, :data:`shared.providers.schema.PURPOSES`). Before a byte leaves, :class:`ProviderClient`
checks that the endpoint template is literally in the provider table's allowlist *for that
purpose* (``api.allowlist.<purpose>``; a GraphQL document only for the purposes it names)
and that the concrete path (path parameters substituted with ``quote(value, safe="")``)
still matches that template under :func:`shared.providers.registry.endpoint_allowed` — so
``../contents`` or ``%2F..`` in a parameter, or a ``Link`` header pointing at another host or
a forbidden path, raise
:class:`EgressRefused` with nothing sent. The API base must be https (http only to a loopback
address, for the local simulators); every request leaves through :mod:`shared.http_egress`
(addresses checked at each request, connection pinned, redirects refused).

Each request takes a lease from the token's :class:`TokenBudget` and returns it afterwards (even
on errors); the rate-limit headers of every answer, 304s included, are recorded with
``observe`` — or, for a provider whose answers carry no remaining quota (the table's
``rate_limit.local_budget``, Bitbucket), every answer is counted against that local budget and
a 429 exhausts it until its retry time. Answers map to :mod:`shared.fetch.errors`: 429 or a
rate-limited 403 → :class:`RateLimited` (not retried: the caller reschedules at ``retry_at``);
5xx, timeouts and connection errors → retried (GET only; POST, PUT and DELETE never) with
exponential backoff through ``clock.sleep``, then :class:`ProviderUnavailable`; a 401/403
saying the token lacks a scope (:mod:`._scopes`) → :class:`InsufficientScope`; 401 →
:class:`TokenRejected`; 404/410 → :class:`NotFoundAtProvider`; any other 4xx →
:class:`ProviderRefused` carrying the status (``provider_status``) only.
Nothing the client raises or logs contains the token, a header value or a response body.

GraphQL (:meth:`ProviderClient.graphql`) is never a free-form endpoint: the client sends only a
document the provider table names (``api.graphql.documents``), whose text in code hashes to the
table's SHA-256, declares exactly the table's variables and selects exactly the table's field
paths, none of them a code field (:mod:`shared.providers.graphql`); variables must have the
declared names and types. Anything else raises :class:`EgressRefused` with nothing sent. A
query is a read, so it is retried like a GET; it leases from the token's budget for the
table's GraphQL resource (GitHub's separate ``graphql`` points), and every answer is observed
into the budget its ``X-RateLimit-Resource`` names. GraphQL errors (HTTP 200 with ``errors``)
map as :mod:`shared.fetch._graphql` describes.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json as jsonlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

from shared import http_egress
from shared.errors import InvalidInput
from shared.fetch import _graphql, _scopes
from shared.fetch import budget as rates
from shared.fetch._graphql import GraphQLResponse
from shared.fetch.budget import TokenBudget
from shared.fetch.errors import (
    EgressRefused,
    InsufficientScope,
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
    TokenRejected,
)
from shared.log import get_logger
from shared.ports import Clock
from shared.providers import graphql as gql
from shared.providers import registry, ssrf
from shared.providers.schema import ProviderSpec

log = get_logger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024
# literal-ending endpoints that take no page size (single objects, or a list never paged)
_SINGLE_RESOURCES = frozenset({"user", "myself", "approvals", "accessible-resources"})
_PORTS = {"https": 443, "http": 80}
Query = str | tuple[str, ...]  # a query value; a tuple repeats the parameter (state=A&state=B)
_GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


@dataclasses.dataclass(frozen=True)
class ApiResponse:
    """One provider answer: parsed JSON ``body`` (None for 304/204) and paging/caching hints."""

    status: int
    body: Any
    etag: str | None
    next_url: str | None
    not_modified: bool
    headers: Mapping[str, str]


class _Transient(Exception):
    """Internal signal: this attempt failed in a way a GET may retry (args[0]: why)."""


def _refuse(spec: ProviderSpec, why: str) -> EgressRefused:
    log.warning("egress.refused", extra={"fields": {"provider": spec.name, "reason": why}})
    return EgressRefused(f"{spec.name}: {why}")


def _check_base(spec: ProviderSpec, api_base: str, local_mode: bool) -> SplitResult:
    """The parsed API base: https (http only to loopback, in local mode); no credentials,
    query or metadata host; no private, link-local or (outside local mode) loopback address,
    whether written as a literal or — outside local mode — what the name resolves to
    (:func:`shared.providers.ssrf.check_base_url`, promise 6)."""
    parts = urlsplit(api_base.rstrip("/"))
    host = (parts.hostname or "").lower()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if (parts.scheme not in _PORTS or not host or parts.username or parts.password
            or parts.query or parts.fragment):
        raise _refuse(spec, "the API base must be an absolute URL without credentials or query")
    if parts.scheme == "http" and not (local_mode and (
            host == "localhost" or literal and literal.is_loopback)):
        raise _refuse(spec, "https is required (http only to a loopback simulator, locally)")
    if "{" in parts.path or "}" in parts.path:
        raise _refuse(spec, "the API base has an unfilled placeholder (no site looked up)")
    if host in ssrf.BLOCKED_NAMES or host.endswith(ssrf.BLOCKED_SUFFIXES):
        raise _refuse(spec, "the API base names a metadata or internal host")
    reason = literal and ssrf.address_refusal(literal, local_mode=local_mode)
    if reason:
        raise _refuse(spec, f"the API base is a {reason}")
    if not local_mode and literal is None:  # what the name resolves to, now
        try:
            ssrf.check_base_url(urlunsplit(parts), local_mode=False)
        except InvalidInput as e:
            raise _refuse(spec, f"the API base is refused: {e.detail}") from None
    return parts


class ProviderClient:
    """Allowlisted, budgeted, retrying access to one provider API with one token."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, spec: ProviderSpec, api_base: str, token: str, session: requests.Session,
                 clock: Clock, budget: TokenBudget | None = None, *, purpose: str,
                 timeout: float = 10.0, max_attempts: int = 3,
                 graphql_documents: Mapping[str, str] | None = None,
                 local_mode: bool | None = None) -> None:
        if not isinstance(token, str) or not token or not token.isprintable() or any(
                c.isspace() or ord(c) > 126 for c in token):
            raise InvalidInput("the provider token is empty or malformed",
                               key="provider.token_malformed")
        if local_mode is None:  # the process's backend: loopback only on embedded/emulator
            from shared.bootstrap import environment_config

            local_mode = environment_config().local_mode
        self._spec, self._base = spec, _check_base(spec, api_base, local_mode)
        self._base_url = urlunsplit(self._base).rstrip("/")
        self._session = http_egress.harden(session, local_mode=local_mode)
        self._token, self._clock, self._budget = token, clock, budget
        self._timeout, self._max_attempts = timeout, max(1, max_attempts)
        if not isinstance(purpose, str) or purpose not in spec.api.purposes:
            raise InvalidInput(f"unknown request purpose {str(purpose)[:20]!r}")
        self._purpose = purpose
        self._allowed = frozenset(spec.api.purposes[purpose])
        # the budget lease: an action's requests count as actions, the rest as fetches
        self._lease = cast(rates.Purpose, "action" if purpose == "act" else "fetch")
        self._one: dict[str, ProviderSpec] = {}
        self._documents = _graphql.Documents(spec, graphql_documents)

    def __repr__(self) -> str:
        return (f"ProviderClient(provider={self._spec.name!r}, api_base={self._base_url!r}, "
                f"purpose={self._purpose!r})")

    def __reduce__(self) -> NoReturn:
        raise TypeError("ProviderClient holds a provider token and cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("ProviderClient holds a provider token and cannot be pickled")

    # ---- public surface ---------------------------------------------------------------------
    @property
    def pagination(self) -> str:
        """The provider table's pagination style (:mod:`shared.fetch.pages` reads it)."""
        return self._spec.api.pagination

    def get(self, template: str, path_params: Mapping[str, str] | None = None,
            params: Mapping[str, Query] | None = None, *, etag: str | None = None) -> ApiResponse:
        """GET an allowlisted ``template`` (``"GET /repos/{owner}/{repo}/pulls"``)."""
        return self._send("GET", self.url(template, path_params, params), template, etag=etag)

    def url(self, template: str, path_params: Mapping[str, str] | None = None,
            params: Mapping[str, Query] | None = None) -> str:
        """The checked URL :meth:`get` would request (a tuple value repeats its parameter);
        lists get the table's page size under its parameter name (``per_page``, ``pagelen``)."""
        path = self._path(template, "GET", path_params or {})
        query = dict(params or {})
        last = template.rsplit("/", 1)[-1]
        if not last.startswith("{") and last not in _SINGLE_RESOURCES:
            query.setdefault(self._spec.api.page_size_param, str(self._spec.api.per_page))
        return self._base_url + path + (f"?{urlencode(query, doseq=True)}" if query else "")

    def get_next(self, next_url: str, template: str, *, etag: str | None = None) -> ApiResponse:
        """GET a provider-supplied next-page URL, only if it stays on ``template``."""
        self._allowlisted(template, "GET")
        try:
            parts = urlsplit(next_url)
            port = parts.port or _PORTS.get(parts.scheme)
        except (ValueError, TypeError, AttributeError):
            raise _refuse(self._spec, "the next-page URL is malformed") from None
        base = self._base
        prefix = base.path.rstrip("/")
        if ((parts.scheme, (parts.hostname or "").lower(), port)
                != (base.scheme, (base.hostname or "").lower(), base.port or _PORTS[base.scheme])
                or parts.username or parts.password or parts.fragment
                or not parts.path.startswith(prefix + "/")):
            raise _refuse(self._spec, "the next-page URL leaves the API base")
        self._check_path(template, "GET", parts.path[len(prefix):])
        return self._send("GET", next_url, template, etag=etag)

    def post(self, template: str, path_params: Mapping[str, str], json: Any) -> ApiResponse:
        """POST to an allowlisted write template (comments, hooks). Never retried."""
        path = self._path(template, "POST", path_params)
        return self._send("POST", self._base_url + path, template, json=json)

    def delete(self, template: str, path_params: Mapping[str, str],
               json: Any = None) -> ApiResponse:
        """DELETE an allowlisted template (a webhook keyway registered; Jira names its ids
        in a JSON body). Never retried."""
        path = self._path(template, "DELETE", path_params)
        return self._send("DELETE", self._base_url + path, template, json=json)

    def put(self, template: str, path_params: Mapping[str, str], json: Any) -> ApiResponse:
        """PUT to an allowlisted write template (refreshing Jira webhooks). Never retried."""
        path = self._path(template, "PUT", path_params)
        return self._send("PUT", self._base_url + path, template, json=json)

    def graphql(self, name: str, variables: Mapping[str, Any]) -> GraphQLResponse:
        """Send the vetted GraphQL document ``name`` with ``variables`` (see the module
        docstring); EgressRefused, with nothing sent, for anything not exactly allowlisted."""
        graphql = self._spec.api.graphql
        document = graphql.documents.get(name) if graphql and isinstance(name, str) else None
        if document is not None and self._purpose not in document.purposes:
            raise _refuse(self._spec, f"GraphQL {name[:60]!r} is not for {self._purpose} clients")
        try:
            text, values = self._documents.prepare(name, variables)
        except gql.DocumentRefused as e:
            raise _refuse(self._spec, f"GraphQL {str(name)[:60]!r}: {e.args[0]}") from None
        assert graphql is not None
        response = self._send("POST", _graphql.endpoint(self._spec, self._base),
                              f"POST graphql {name}", json={"query": text, "variables": values},
                              resource=graphql.resource, idempotent=True)
        return _graphql.result(self._spec, name, response.body, response.headers,
                               self._clock.now())

    # ---- egress checks ----------------------------------------------------------------------
    def _allowlisted(self, template: str, method: str) -> None:
        if not isinstance(template, str) or template not in self._allowed:
            raise _refuse(self._spec, f"{str(template)[:120]!r} is not an allowlisted endpoint "
                          f"for {self._purpose} clients")
        if template.partition(" ")[0] != method:
            raise _refuse(self._spec, f"{template!r} is not a {method} endpoint")

    def _check_path(self, template: str, method: str, path: str) -> None:
        one = self._one.get(template)
        if one is None:
            api = dataclasses.replace(self._spec.api, allowlist=(template,))
            one = self._one[template] = dataclasses.replace(self._spec, api=api)
        if not (registry.endpoint_allowed(one, method, path)
                and registry.endpoint_allowed(self._spec, method, path)):
            raise _refuse(self._spec, f"the path does not match {template!r}")

    def _path(self, template: str, method: str, path_params: Mapping[str, Any]) -> str:
        """The concrete path of ``template`` with every ``{param}`` filled, or EgressRefused."""
        self._allowlisted(template, method)
        route, names = template.partition(" ")[2], set()
        segments = []
        for segment in route.split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                names.add(segment[1:-1])
                value = path_params.get(segment[1:-1])
                if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                    raise _refuse(self._spec, f"path parameter {segment} is missing or empty")
                segment = quote(str(value), safe="")
            segments.append(segment)
        if set(path_params) - names:
            raise _refuse(self._spec, f"unexpected path parameters for {template!r}")
        path = "/".join(segments)
        self._check_path(template, method, path)
        return path

    # ---- sending ----------------------------------------------------------------------------
    def _headers(self, etag: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": "keyway",
                   **(_GITHUB_HEADERS if self._spec.name == "github"
                      else {"Accept": "application/json"})}
        if etag:
            headers["If-None-Match"] = etag
        return headers

    def _send(self, method: str, url: str, template: str, *, etag: str | None = None,
              json: Any = None, resource: str = rates.CORE,
              idempotent: bool = False) -> ApiResponse:
        attempts = self._max_attempts if method == "GET" or idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._leased(method, url, template, etag, json, resource)
            except _Transient as e:
                fields = {"provider": self._spec.name, "template": template,
                          "attempt": attempt, "reason": e.args[0]}
                if attempt == attempts:
                    log.warning("provider.unavailable", extra={"fields": fields})
                    raise ProviderUnavailable(f"{self._spec.name} {template}: {e.args[0]} "
                                              f"after {attempt} attempt(s)") from None
                log.info("provider.retry", extra={"fields": fields})
                self._clock.sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _leased(self, method: str, url: str, template: str, etag: str | None,
                json: Any, resource: str) -> ApiResponse:
        """One attempt under a lease from ``resource``'s budget, released whatever happens
        (or left to expire)."""
        budget = self._budget.for_resource(resource) if self._budget is not None else None
        lease = budget.acquire(self._lease) if budget is not None else None
        readings: list[tuple[int, int, datetime]] = []  # recorded with the release
        try:
            return self._once(method, url, template, etag, json, resource, readings)
        finally:
            try:
                if budget is not None and lease is not None:
                    budget.release(lease, readings[0] if readings else None)
            except Exception as e:  # noqa: BLE001 - never mask the answer; the lease expires
                log.warning("budget.release_failed", extra={"fields": {"error": type(e).__name__}})

    def _once(self, method: str, url: str, template: str, etag: str | None,
              json: Any, resource: str,
              readings: list[tuple[int, int, datetime]]) -> ApiResponse:
        started = self._clock.monotonic()
        try:
            with self._session.request(method, url, headers=self._headers(etag), json=json,
                                       timeout=self._timeout, allow_redirects=False,
                                       stream=True) as response:
                raw = self._read(response)
        except requests.Timeout:
            raise _Transient("timeout") from None
        except requests.RequestException as e:
            raise _Transient(f"connection failed ({type(e).__name__})") from None
        remaining = self._observe(response.headers, resource, readings)
        log.debug("provider.request", extra={"fields": {
            "provider": self._spec.name, "method": method, "template": template,
            "status": response.status_code, "remaining": remaining,
            "elapsed_ms": round((self._clock.monotonic() - started) * 1000)}})
        return self._interpret(response, raw, template, url)

    def _read(self, response: requests.Response) -> bytes | None:
        """The body, or None when it is over :attr:`max_body_bytes`."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _observe(self, headers: Mapping[str, str], resource: str,
                 readings: list[tuple[int, int, datetime]]) -> int | None:
        """Record the answer's rate-limit headers in the budget of the resource it names
        (else of the one the request leased from) — for the leased one, by handing the
        reading to the lease's release, so a request costs two budget writes, not three; with
        no quota headers, count the answer against the table's local budget."""
        rate = self._spec.api.rate_limit
        reading = rates.read_rate_headers(rate, headers, self._clock.now())
        if reading is not None and self._budget is not None:
            named = rates.answer_resource(rate, headers) or resource
            if named == resource:
                readings.append(reading)
            else:
                self._budget.for_resource(named).observe(
                    limit=reading[0], remaining=reading[1], reset_at=reading[2])
        elif rate.local_budget is not None and self._budget is not None:
            local = rate.local_budget
            self._budget.for_resource(resource).count(
                limit=local.requests, window=timedelta(seconds=local.window_seconds))
        return None if reading is None else reading[1]

    def _interpret(self, response: requests.Response, raw: bytes | None, template: str,
                   url: str) -> ApiResponse:
        status, headers = response.status_code, CaseInsensitiveDict(response.headers)
        what = f"{self._spec.name} {template}"
        if status == 304 or 200 <= status < 300:
            if raw is None:
                raise MalformedResponse(f"{what}: body over {self.max_body_bytes} bytes")
            try:
                body = jsonlib.loads(raw) if raw and status not in (204, 304) else None
            except ValueError:
                raise MalformedResponse(f"{what}: answered invalid JSON") from None
            return ApiResponse(status, body, headers.get("ETag"), self._next_url(
                headers, body, url), status == 304, headers)
        rate = self._spec.api.rate_limit
        if rates.is_rate_limited(rate, status, headers, raw):
            when = rates.retry_at(rate, headers, self._clock.now())
            if rate.local_budget is not None and self._budget is not None:
                self._budget.exhaust(when, rate.local_budget.requests)
            log.info("provider.rate_limited", extra={"fields": {
                "provider": self._spec.name, "template": template, "status": status,
                "retry_at": when.isoformat()}})
            raise RateLimited(f"{what}: rate limited ({status})", when)
        if _scopes.lacks_scope(status, headers, raw):
            raise InsufficientScope(f"{what}: the token lacks a scope ({status})",
                                    provider_status=status)
        if status == 401:
            raise TokenRejected(f"{what}: the provider rejected the token (401)")
        if status in (404, 410):
            raise NotFoundAtProvider(f"{what}: not found ({status})")
        if status >= 500:
            raise _Transient(f"answered {status}")
        raise ProviderRefused(f"{what}: answered {status}", provider_status=status)

    def _next_url(self, headers: Mapping[str, str], body: Any, url: str) -> str | None:
        """The absolute next-page URL (``Link`` rel=next, ``X-Next-Page``, a body ``next``, or
        a body cursor: ``nextPageToken`` / ``startAt`` + ``total``)."""
        style = self._spec.api.pagination
        if style in ("link_header", "keyset"):
            links = requests.utils.parse_header_links(headers.get("Link", ""))
            target = next((link.get("url") for link in links if link.get("rel") == "next"), None)
            return urljoin(url, target) if target else None
        if style == "offset":
            page = headers.get("X-Next-Page", "").strip()
            return _with_param(url, "page", page) if page.isdigit() else None
        if style == "body_cursor":
            return _body_cursor(body, url)
        target = body.get("next") if isinstance(body, dict) else None
        return urljoin(url, target) if isinstance(target, str) and target else None


def _with_param(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value`` (replacing any earlier one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != name] + [(name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _body_cursor(body: Any, url: str) -> str | None:
    """Atlassian's paging in the JSON body: ``nextPageToken`` (until ``isLast``) as on
    ``/search/jql``, else ``startAt`` + the page's item count while below ``total`` (comments,
    project search). A page that says neither, or is empty, is the last."""
    if not isinstance(body, dict) or body.get("isLast") is True:
        return None
    token = body.get("nextPageToken")
    if isinstance(token, str) and token:
        return _with_param(url, "nextPageToken", token)
    start, total = body.get("startAt"), body.get("total")
    count = max((len(v) for v in body.values() if isinstance(v, list)), default=0)
    if (isinstance(start, int) and isinstance(total, int) and not isinstance(start, bool)
            and count and start + count < total):
        return _with_param(url, "startAt", str(start + count))
    return None


def connection_api_base(spec: ProviderSpec, connection: Mapping[str, Any]) -> str:
    """A connection's API base: the one recorded at connect (self-hosted, or Jira's site),
    else the provider's (``KEYWAY_<P>_API_URL`` or the table's)."""
    return connection.get("api_base") or registry.api_base_url(
        spec, os.environ, connection.get("base_url"))


@functools.cache
def shared_session() -> requests.Session:
    """One pooled HTTP session per instance for the components that call provider APIs,
    hardened from birth (:func:`shared.http_egress.harden`: no proxy environment, pinned
    addresses, no redirects); :class:`ProviderClient` hardens it again, idempotently."""
    return http_egress.egress_session()
