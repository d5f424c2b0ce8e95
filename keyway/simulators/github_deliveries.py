"""GitHub's webhook deliveries in the simulator: sending (the App's webhook and repository
hooks) through a :class:`~.delivery_log.DeliveryLog`, and the delivery-log endpoints in
GitHub's documented shapes (REST 2022-11-28, docs.github.com/rest/apps/webhooks and
/rest/repos/webhooks, "List deliveries for an app webhook", "Get a delivery …", "Redeliver a
delivery …"):

* ``GET /app/hook/deliveries`` (app JWT) and ``GET /repos/{o}/{r}/hooks/{hook_id}/deliveries``
  (a token that administers the repository, ``admin:repo_hook`` or ``read:repo_hook``):
  newest first, ``per_page`` (30 by default, at most 100) and cursor paging — a ``Link``
  ``rel="next"`` carrying ``cursor=v1_<id>`` while older deliveries remain; ``status=success|
  failure`` filters; a malformed ``cursor`` → 400. Items: ``id``, ``guid``, ``delivered_at``,
  ``redelivery``, ``duration``, ``status``, ``status_code``, ``event``, ``action``,
  ``installation_id``, ``repository_id``, ``throttled_at``.
* ``GET …/deliveries/{delivery_id}``: the item plus ``url``, ``request`` (``headers``,
  ``payload``) and ``response`` (``headers``, ``payload``); an unknown id → 404.
* ``POST …/deliveries/{delivery_id}/attempts``: 202 ``{}``; the same body is sent again with
  the same ``X-GitHub-Delivery`` GUID and logged with ``redelivery: true`` (the drop knob
  applies to it too).

Knob :attr:`GitHubDeliveries.omit_payloads`: the get answers ``request.payload: null`` (the
description allows it), so a client has to ask for a redelivery.

App endpoints are not metered (as the rest of :mod:`.github_app`); the repository ones are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import iso
from keyway.simulators.delivery_log import Delivery, DeliveryLog
from keyway.simulators.github_api import API, COMMON_HEADERS, DOCS, _error
from keyway.simulators.github_app import GitHubApps
from keyway.simulators.hooks import Hook, HookStore
from keyway.simulators.server import Route
from keyway.simulators.wire import json_response, raw_base_url

APP_HOOK = "app"
_CURSOR = re.compile(r"^v1_([0-9]{1,19})$")
APP_DOCS = f"{DOCS}/apps/webhooks"


@dataclass
class AppWebhook:
    """The GitHub App's own webhook (one per app): where GitHub sends installation events."""

    app_id: str
    url: str
    secret: str = field(repr=False)
    id: int = 470_000_001


def _signed(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {**headers, "X-Hub-Signature-256": f"sha256={digest}"}
    return headers


def item_json(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "guid": d.guid, "delivered_at": iso(int(d.delivered_at)),
            "redelivery": d.redelivery, "duration": round(d.duration, 3), "status": d.status,
            "status_code": d.status_code, "event": d.event, "action": d.action,
            "installation_id": d.extra.get("installation_id"),
            "repository_id": d.extra.get("repository_id"), "throttled_at": None}


def detail_json(d: Delivery, omit_payload: bool = False) -> dict[str, Any]:
    return {**item_json(d), "url": d.url,
            "request": {"headers": d.request_headers,
                        "payload": None if omit_payload else d.payload},
            "response": {"headers": d.response_headers, "payload": d.response_body}}


class GitHubDeliveries:
    """Sending through the log, and the log's endpoints (see the module docstring)."""

    def __init__(self, apps: GitHubApps, hooks: HookStore, log: DeliveryLog) -> None:
        self.apps, self.hooks, self.log = apps, hooks, log
        self.app_hook: AppWebhook | None = None
        self.omit_payloads = False  # knob: ``request.payload`` null (the schema allows it)
        self._secrets: dict[int, Callable[[], str]] = {}

    # ---- sending ------------------------------------------------------------------------------
    def deliver_app(self, event: str, payload: dict[str, Any]) -> Delivery | None:
        """Send ``event`` to the App's webhook (None when no app webhook is set)."""
        hook = self.app_hook
        if hook is None:
            return None
        installation = payload.get("installation") or {}
        return self._send(APP_HOOK, hook.url, event, payload, lambda: hook.secret,
                          str(uuid.uuid4()),
                          {"X-GitHub-Hook-ID": str(hook.id),
                           "X-GitHub-Hook-Installation-Target-Type": "integration",
                           "X-GitHub-Hook-Installation-Target-ID": hook.app_id},
                          installation_id=installation.get("id"))

    def deliver_repo(self, full_name: str, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Send ``event`` to every active hook on ``full_name`` subscribed to it (or ``*``)."""
        guid = str(uuid.uuid4())  # one GUID shared by every hook of the same event
        sent = []
        for hook in self.hooks.list(full_name.lower()):
            if hook.active and {event, "*"} & set(hook.events):
                sent.append(self._send(str(hook.id), hook.url, event, payload,
                                       _secret_of(hook), guid,
                                       {"X-GitHub-Hook-ID": str(hook.id),
                                        "X-GitHub-Hook-Installation-Target-Type": "repository"},
                                       repository_id=(payload.get("repository") or {}).get("id")))
        return sent

    def _send(self, hook: str, url: str, event: str, payload: dict[str, Any],
              secret: Callable[[], str], guid: str, extra_headers: dict[str, str], *,
              redelivery: bool = False, **extra: Any) -> Delivery:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": guid,
                   "User-Agent": "GitHub-Hookshot/sim", **extra_headers}
        record = self.log.send(hook=hook, url=url, guid=guid, event=event,
                               action=payload.get("action"), payload=payload, body=body,
                               headers=_signed(secret(), body, headers), redelivery=redelivery,
                               **extra)
        self._secrets[record.id] = secret
        return record

    def redeliver(self, record: Delivery) -> Delivery:
        headers = {k: v for k, v in record.request_headers.items()
                   if k.startswith("X-GitHub") or k == "User-Agent"}
        return self._send(record.hook, record.url, record.event, record.payload,
                          self._secrets[record.id],
                          record.guid, headers, redelivery=True, **record.extra)

    # ---- endpoints ----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        base = f"{API}/app/hook/deliveries"
        return [Route(base, ("GET",), self.app_list),
                Route(f"{base}/<int:delivery_id>", ("GET",), self.app_get),
                Route(f"{base}/<int:delivery_id>/attempts", ("POST",), self.app_redeliver)]

    def _app(self, request: Request) -> Response | None:
        found = self.apps.authorized_app(request)
        if isinstance(found, Response):
            return found
        if self.app_hook is None or self.app_hook.app_id != found.app_id:
            return _error(404, "Not Found", APP_DOCS)
        return None

    def app_list(self, request: Request) -> Response:
        refused = self._app(request)
        if refused is not None:
            return refused
        found = self.listing(request, APP_HOOK)
        return found if isinstance(found, Response) else json_response(found[0], 200, found[1])

    def app_get(self, request: Request, delivery_id: int) -> Response:
        refused = self._app(request)
        found = self.find(APP_HOOK, delivery_id)
        if refused is not None or found is None:
            return refused or _error(404, "Not Found", APP_DOCS)
        return json_response(detail_json(found, self.omit_payloads), 200, dict(COMMON_HEADERS))

    def app_redeliver(self, request: Request, delivery_id: int) -> Response:
        refused = self._app(request)
        found = self.find(APP_HOOK, delivery_id)
        if refused is not None or found is None:
            return refused or _error(404, "Not Found", APP_DOCS)
        self.redeliver(found)
        return json_response({}, 202, dict(COMMON_HEADERS))

    # ---- shared by the app and repository endpoints -------------------------------------------
    def find(self, hook: str, delivery_id: int) -> Delivery | None:
        found = self.log.get(delivery_id)
        return found if found is not None and found.hook == hook else None

    def listing(self, request: Request, hook: str) -> tuple[Any, dict[str, str]] | Response:
        """One page, newest first, with the cursor ``Link``; or the 400 answer."""
        per_page = min(max(request.args.get("per_page", 30, type=int) or 30, 1), 100)
        cursor = request.args.get("cursor")
        match = _CURSOR.match(cursor) if cursor is not None else None
        if cursor is not None and match is None:
            return _error(400, "Bad request: invalid cursor", APP_DOCS)
        wanted = request.args.get("status")
        records = [r for r in reversed(self.log.records(hook))
                   if (match is None or r.id < int(match.group(1)))
                   and (wanted != "success" or r.ok) and (wanted != "failure" or not r.ok)]
        page = records[:per_page]
        headers = dict(COMMON_HEADERS)
        if len(records) > per_page:
            query = urlencode({**request.args.to_dict(), "per_page": per_page,
                               "cursor": f"v1_{page[-1].id}"})
            headers["Link"] = f'<{raw_base_url(request)}?{query}>; rel="next"'
        return [item_json(r) for r in page], headers


def _secret_of(hook: Hook) -> Callable[[], str]:
    return lambda: hook.secret
