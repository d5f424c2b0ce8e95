"""Jira Cloud's dynamic webhooks for OAuth 2.0 apps as the simulator serves them (REST v3
"Webhooks", under ``/ex/jira/{cloud_id}/rest/api/3``, metered like every other endpoint), and
their deliveries.

* ``POST /webhook {"url", "webhooks": [{"events", "jqlFilter"}]}`` → 200
  ``{"webhookRegistrationResult": [{"createdWebhookId": id} | {"errors": [...]}]}``, one
  result per webhook: an unknown event, or a ``jqlFilter`` outside the subset understood here
  (``project = X`` and ``project in (X, Y)``, by id or key, of existing projects), is an
  ``errors`` entry. An app has one URL: a ``url`` other than the one its live webhooks use →
  400.
* ``GET /webhook`` (``startAt``/``maxResults`` ≤ 100) → ``{"startAt", "maxResults", "total",
  "isLast", "values": [{"id", "jqlFilter", "events", "expirationDate", "url"}]}``: the calling
  app's live webhooks.
* ``DELETE /webhook {"webhookIds"}`` → 202; ids that are not the app's are ignored. Without
  ``webhookIds`` → 400.
* ``PUT /webhook/refresh {"webhookIds"}`` → 200 ``{"expirationDate"}``: the app's live webhooks
  among them now expire 30 days from now; other ids are ignored (as Jira does).
* ``GET /webhook/failed`` (``maxResults``, default and at most 100; ``after``, epoch ms) →
  ``{"values": [{"id", "body", "url", "failureTime"}], "maxResults", "next"}``: the calling
  app's deliveries that failed (the drop knob, :meth:`DynamicWebhooks.drop_next` /
  ``drop_fraction``, loses one as Jira gives up after its retries), oldest first, those of
  the last 72 hours only; ``next`` (``…?after=<last failureTime>&maxResults=N``) when the page
  has any. ``id`` is the delivery's ``X-Atlassian-Webhook-Identifier``. Atlassian's
  description says only Connect apps may call it while listing OAuth 2.0 scopes for it
  (``read:jira-work`` and ``manage:jira-webhook``); the simulator serves OAuth 2.0 apps, and
  :attr:`DynamicWebhooks.failed_connect_only` answers 403 as the description's text says.

A webhook lives 30 days after its creation or last refresh; ``expirationDate`` is epoch
milliseconds (the REST schema's ``int64``). An expired webhook is neither listed, refreshed nor
delivered. Every call needs ``read:jira-work`` and ``manage:jira-webhook`` (or their granular
equivalents; :data:`.jira_api.SCOPES`), otherwise the gateway's 401 ``scope does not match``.

:meth:`DynamicWebhooks.deliver` sends an event as Jira does to an OAuth 2.0 app: one POST per
app whose live webhooks match (their events include it, their filter the issue's project),
the body with ``matchedWebhookIds``, ``Authorization: Bearer <JWT>`` signed HS256 with the
app's client secret (claims ``iat`` and ``exp`` three minutes later; Atlassian documents the
signing key, not the claims) and a fresh ``X-Atlassian-Webhook-Identifier``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from werkzeug.wrappers import Request, Response

from keyway.simulators.delivery_log import DeliveryLog
from keyway.simulators.jira_api import API, JiraApi, Produced, errors
from keyway.simulators.jira_data import JiraData
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Route

LIFETIME = 30 * 86400.0
FAILED_RETENTION = 72 * 3600.0  # "After 72 hours the failure may no longer be returned"
JWT_TTL = 180
EVENTS = frozenset({"jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
                    "comment_created", "comment_updated", "comment_deleted",
                    "issue_property_set", "issue_property_deleted"})
_JQL = re.compile(r"^\s*project\s*(?:=\s*([\w-]+)|in\s*\(([^)]*)\))\s*$", re.IGNORECASE)


@dataclass
class DynamicWebhook:
    id: int
    client_id: str
    url: str
    events: tuple[str, ...]
    jql: str
    projects: frozenset[int]
    expires_at: float

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "jqlFilter": self.jql, "events": list(self.events),
                "expirationDate": int(self.expires_at * 1000), "url": self.url}


@dataclass
class DynamicWebhooks:
    """The apps' webhooks on the simulated site; thread-safe. ``deleted`` and ``refreshed``
    (ids) let tests prove a removal or a renewal; ``on_token`` sees every delivery JWT."""

    clock: Callable[[], float]
    on_token: Callable[[str], object] | None = None
    hooks: dict[int, DynamicWebhook] = field(default_factory=dict)
    deleted: list[DynamicWebhook] = field(default_factory=list)
    refreshed: list[int] = field(default_factory=list)
    failed_connect_only: bool = False  # True: /webhook/failed answers 403 to OAuth 2.0 apps
    _ids: Any = field(default_factory=lambda: itertools.count(10_000))
    _lock: Any = field(default_factory=threading.Lock)
    log: DeliveryLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = DeliveryLog(self.clock)

    def drop_next(self, count: int) -> None:
        """Knob: the next ``count`` deliveries fail (listed by ``GET /webhook/failed``)."""
        self.log.drop_next(count)

    def drop_fraction(self, fraction: float, seed: int = 0) -> None:
        """Knob: each delivery fails with probability ``fraction`` (seeded)."""
        self.log.drop_fraction(fraction, seed)

    def failed(self, client_id: str, after_ms: int | None) -> list[dict[str, Any]]:
        """The app's failed deliveries after ``after_ms`` within the retention, oldest first."""
        floor = (self.clock() - FAILED_RETENTION) * 1000
        rows = [{"id": r.guid, "body": json.dumps(r.payload), "url": r.url,
                 "failureTime": int(r.delivered_at * 1000)}
                for r in self.log.records(client_id) if not r.ok]
        return [r for r in rows if r["failureTime"] >= floor
                and (after_ms is None or r["failureTime"] > after_ms)]

    def live(self, client_id: str | None = None) -> list[DynamicWebhook]:
        now = self.clock()
        with self._lock:
            return [h for h in self.hooks.values() if h.expires_at > now
                    and (client_id is None or h.client_id == client_id)]

    def add(self, client_id: str, url: str, events: tuple[str, ...], jql: str,
            projects: frozenset[int]) -> DynamicWebhook:
        with self._lock:
            hook = DynamicWebhook(next(self._ids), client_id, url, events, jql, projects,
                                  self.clock() + LIFETIME)
            self.hooks[hook.id] = hook
            return hook

    def remove(self, client_id: str, ids: set[int]) -> None:
        with self._lock:
            for ident in [i for i in ids if i in self.hooks
                          and self.hooks[i].client_id == client_id]:
                self.deleted.append(self.hooks.pop(ident))

    def refresh(self, client_id: str, ids: set[int]) -> float:
        now = self.clock()
        with self._lock:
            for hook in self.hooks.values():
                if hook.id in ids and hook.client_id == client_id and hook.expires_at > now:
                    hook.expires_at = now + LIFETIME
                    self.refreshed.append(hook.id)
        return now + LIFETIME

    def deliver(self, event: str, project: int, payload: dict[str, Any],
                secret_of: Callable[[str], str]) -> list[requests.Response]:
        """POST ``payload`` (with ``matchedWebhookIds``) once per app with a matching live
        webhook, signed with that app's client secret; returns the answers."""
        by_app: dict[tuple[str, str], list[int]] = {}
        for hook in self.live():
            if event in hook.events and project in hook.projects:
                by_app.setdefault((hook.client_id, hook.url), []).append(hook.id)
        answers = []
        for (client_id, url), ids in sorted(by_app.items()):
            now = int(self.clock())
            token = jwt.encode({"iat": now, "exp": now + JWT_TTL}, secret_of(client_id),
                               algorithm="HS256")
            if self.on_token is not None:
                self.on_token(token)
            sent, guid = {**payload, "matchedWebhookIds": sorted(ids)}, str(uuid.uuid4())
            record = self.log.send(
                hook=client_id, url=url, guid=guid, event=event, action=None,
                payload=sent, body=json.dumps(sent).encode(),
                headers={"Authorization": f"Bearer {token}",
                         "X-Atlassian-Webhook-Identifier": guid,
                         "User-Agent": "Atlassian Webhook HTTP Client"})
            answers.append(record.answer)
        return answers


class JiraWebhooksApi(JiraApi):
    """The ``/webhook`` endpoints over a :class:`DynamicWebhooks` store."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: JiraData,
                 zone: Callable[[], str], store: DynamicWebhooks) -> None:
        super().__init__(authority, limiter, data, zone)
        self.store = store

    def routes(self) -> list[Route]:
        return [Route(f"{API}/webhook", ("GET", "POST", "DELETE"), self.webhooks),
                Route(f"{API}/webhook/refresh", ("PUT",), self.refresh),
                Route(f"{API}/webhook/failed", ("GET",), self.failed)]

    def failed(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            if self.store.failed_connect_only:
                return errors(403, "Only Connect apps can use this operation.")
            size = min(max(request.args.get("maxResults", 100, type=int) or 100, 1), 100)
            after = request.args.get("after")
            if after is not None and not after.isdigit():
                return errors(400, "'after' must be a number of milliseconds.")
            rows = self.store.failed(info.client_id, int(after) if after else None)
            page = rows[:size]
            while len(page) < len(rows) and rows[len(page)]["failureTime"] == page[-1][
                    "failureTime"]:  # never split one failure time across pages
                page.append(rows[len(page)])
            answer: dict[str, Any] = {"values": page, "maxResults": size}
            if page:
                answer["next"] = (f"{request.base_url}?after={page[-1]['failureTime']}"
                                  f"&maxResults={size}")
            return answer
        return self._call(request, cloud_id, produce)

    def webhooks(self, request: Request, cloud_id: str) -> Response:
        handler = {"GET": self._list, "POST": self._register, "DELETE": self._delete}
        return self._call(request, cloud_id,
                          lambda info: handler[request.method](request, info))

    def refresh(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            ids = _ids(request)
            if ids is None:
                return errors(400, "webhookIds must be a list of webhook ids.")
            until = self.store.refresh(info.client_id, ids)
            return {"expirationDate": int(until * 1000)}
        return self._call(request, cloud_id, produce)

    # ---- the verbs of /webhook ----------------------------------------------------------
    def _list(self, request: Request, info: TokenInfo) -> Produced:
        start = max(request.args.get("startAt", 0, type=int) or 0, 0)
        size = min(max(request.args.get("maxResults", 100, type=int) or 100, 1), 100)
        found = sorted(self.store.live(info.client_id), key=lambda h: h.id)
        chunk = found[start:start + size]
        return {"startAt": start, "maxResults": size, "total": len(found),
                "isLast": start + len(chunk) >= len(found), "values": [h.json() for h in chunk]}

    def _register(self, request: Request, info: TokenInfo) -> Produced:
        body = request.get_json(silent=True)
        url = body.get("url") if isinstance(body, dict) else None
        wanted = body.get("webhooks") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) \
                or not isinstance(wanted, list) or not wanted:
            return errors(400, "A url and at least one webhook are required.")
        if any(h.url != url for h in self.store.live(info.client_id)):
            return errors(400, "Only one URL per app is allowed: the app's webhooks already "
                          "use another.")
        return {"webhookRegistrationResult": [self._one(info, url, w) for w in wanted]}

    def _one(self, info: TokenInfo, url: str, wanted: Any) -> dict[str, Any]:
        events = wanted.get("events") if isinstance(wanted, dict) else None
        jql = wanted.get("jqlFilter") if isinstance(wanted, dict) else None
        if not isinstance(events, list) or not events or not set(events) <= EVENTS:
            return {"errors": ["Invalid or unsupported events."]}
        projects = self._projects(jql)
        if projects is None:
            return {"errors": ["The JQL filter is not supported for webhooks."]}
        hook = self.store.add(info.client_id, url, tuple(events), jql, projects)
        return {"createdWebhookId": hook.id}

    def _projects(self, jql: Any) -> frozenset[int] | None:
        match = _JQL.match(jql) if isinstance(jql, str) else None
        if match is None:
            return None
        names = [match.group(1)] if match.group(1) else match.group(2).split(",")
        found = [self.data.project(n.strip().strip('"')) for n in names]
        return frozenset(p.id for p in found) if found and None not in found else None

    def _delete(self, request: Request, info: TokenInfo) -> Produced:
        ids = _ids(request)
        if ids is None:
            return errors(400, "webhookIds must be a list of webhook ids.")
        self.store.remove(info.client_id, ids)
        return Response(status=202)


def _ids(request: Request) -> set[int] | None:
    body = request.get_json(silent=True)
    ids = body.get("webhookIds") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return None
    return set(ids)
