"""``fetch-P`` keeps one dynamic webhook per connection where the provider registers webhooks
per app and lets them expire (``webhook_registration.kind == "site"``: Jira Cloud's REST v3
"Webhooks" for OAuth 2.0 apps), with the app token and the metadata-only client.

Jira's side (developer.atlassian.com/cloud/jira/platform/webhooks): ``POST /rest/api/3/webhook
{"url", "webhooks": [{"events", "jqlFilter"}]}`` → ``{"webhookRegistrationResult":
[{"createdWebhookId"} | {"errors"}]}``; ``GET`` lists the app's webhooks (``startAt`` paging;
``id``, ``jqlFilter``, ``events``, ``expirationDate``); ``DELETE`` and ``PUT …/refresh`` take
``{"webhookIds"}`` in the body, the refresh answers ``{"expirationDate"}``. A webhook lives
``expires_after_days`` (30) after its creation or last refresh; an app has one URL, so every
webhook points at ``<public_url>/webhook-P/`` and is signed with the app's client secret.

:meth:`SiteRegistrar.ensure` runs on every sync once the projects are walked and sends no
request unless something is due:

* no record (or ``unavailable`` past its ``retry_at``) → record ``registering`` (the intent),
  POST one webhook for the connection's projects (``jqlFilter: project in (<ids>)``) → ``active``
  with its id and ``expires_at`` (``webhooks.registered``);
* an intent left by a sync that died after the POST (``registering``, or ``pending`` on an
  active record) → the app's webhooks are listed first and one with that filter and our
  events, alive and claimed by no other connection, is adopted (``webhooks.adopted``);
* the project set changed → a webhook with the new filter is created first, then the old one
  deleted: no gap. A failed deletion keeps its id in ``retired_ids`` (deleted by a later sync
  or on disconnect; it expires by itself anyway);
* fewer than :data:`RENEW_BEFORE` left → the webhooks are listed (one request every ~20 days);
  ours alive → ``PUT …/refresh`` and ``expires_at`` becomes Jira's answer
  (``webhooks.renewed``); expired or gone (deleted at Jira) → registered again;
* no project left → the webhook is deleted (``removed``, reason ``webhooks.no_projects``);
* the public URL changed → Jira keeps one URL per app, so the old webhook is deleted first and
  a new one registered (refused, and retried daily, until every connection to that site has
  moved its own).

A connection that syncs (every 15 minutes by default, at worst every 16 hours after failures)
renews days before its webhook lapses; one that stops syncing for 10 days or more (revoked
token, reauthorization pending) lets it lapse, and its next sync registers a new one.

Failures as in :mod:`shared.webhooks.register`: a refusal (403 without
``manage:jira-webhook``, 404, an error in Jira's per-webhook result) → ``webhooks.unavailable``
and tried again after a day — a first registration is recorded ``unavailable``, an active one
stays active (its webhook still delivers) with ``retry_at``; a 5xx, timeout or malformed answer
→ ``webhooks.register_failed`` and the next sync retries; a rate limit, a spent budget or a
rejected token propagates to the sync. A connection no longer ``active`` registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from shared.log import get_logger
from shared.ports import DocumentStore, Filter, Ports, Snapshot
from shared.providers.schema import ProviderSpec
from shared.webhooks import hooks
from shared.webhooks.hooks import RETRY_AFTER, Counts

RENEW_BEFORE = timedelta(days=10)
MAX_PAGES = 20
log = get_logger("keyway.webhooks")


def jql_filter(repositories: Iterable[Snapshot]) -> str | None:
    """``project in (<ids>)`` over the connection's projects, ids sorted (None: no project)."""
    ids = sorted({str(r.data.get("external_id")) for r in repositories
                  if str(r.data.get("external_id")).isdigit()}, key=int)
    return f"project in ({', '.join(ids)})" if ids else None


def expiry(value: Any) -> datetime | None:
    """Jira's ``expirationDate``: epoch milliseconds (the schema) or ``2019-06-01T12:42:30.000
    +0000`` (the examples); None when it is neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        for parse in (lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%f%z"), parse_iso):
            try:
                return parse(value).astimezone(UTC)
            except ValueError:
                continue
    return None


def _wire(ids: Iterable[str]) -> list[int | str]:
    return [int(i) if i.isdigit() else i for i in ids]


def listed(client: ProviderClient, spec: ProviderSpec) -> list[dict[str, Any]]:
    """Every webhook of the app on the connection's site (paged)."""
    template = spec.webhook_registration.templates["list"]  # type: ignore[union-attr]
    page, found = client.get(template), []
    for _ in range(MAX_PAGES):
        values = page.body.get("values") if isinstance(page.body, dict) else None
        if not isinstance(values, list):
            raise MalformedResponse(f"{spec.name}: a webhook page without values")
        found += [w for w in values if isinstance(w, dict)
                  and isinstance(w.get("id"), int | str) and not isinstance(w.get("id"), bool)]
        if page.next_url is None:
            break
        page = client.get_next(page.next_url, template)
    return found


def claimed_elsewhere(store: DocumentStore, provider: str, site: str | None,
                     connection: str) -> set[str]:
    """Webhook ids the other connections to ``site`` hold: never adopted or deleted here."""
    snaps = store.query(hooks.COLLECTION, [Filter("provider", "==", provider),
                                           Filter("external_id", "==", site)])
    return {str(i) for s in snaps if s.data.get("connection") != connection
            for i in (*(s.data.get("hook_ids") or ()), *(s.data.get("retired_ids") or ()))}


def delete(client: ProviderClient, spec: ProviderSpec, ids: Sequence[str]) -> None:
    """Delete the app's webhooks ``ids`` (Jira ignores ids that are not the app's)."""
    template = spec.webhook_registration.templates["delete"]  # type: ignore[union-attr]
    client.delete(template, {}, json={"webhookIds": _wire(ids)})


class SiteRegistrar:
    """Keeps a connection's one dynamic webhook registered and alive; see the module
    docstring. Same interface as :class:`shared.webhooks.register.Registrar`."""

    def __init__(self, ports: Ports, client: ProviderClient, spec: ProviderSpec, tenant: str,
                 connection: str, public_url: str) -> None:
        reg = spec.webhook_registration
        assert reg is not None and reg.kind == "site" and reg.expires_after_days
        self._ports, self._client, self._spec, self._reg = ports, client, spec, reg
        self._tenant, self._connection = tenant, connection
        self.url = hooks.app_url(public_url, spec.name)
        self.counts = Counts()
        self._site: str | None = None

    def __repr__(self) -> str:
        return f"SiteRegistrar(provider={self._spec.name!r}, connection={self._connection!r})"

    def ensure(self, repositories: Sequence[Snapshot],
               out_of_time: Callable[[], bool] | None = None) -> Counts:
        """Register, replace, renew or remove as due (at most a few requests, so the sync's
        ``out_of_time`` is not consulted)."""
        record = hooks.for_connection(self._ports.business, self._connection).get(hooks.SITE)
        jql = jql_filter(repositories)
        step = self._due(record, jql)
        if step is None or not self._still_active():
            return self.counts
        try:
            step(record, jql)
        except (NotFoundAtProvider, ProviderRefused) as e:
            self._refused(e)
        except (ProviderUnavailable, MalformedResponse) as e:
            self.counts.failed += 1
            log.warning("webhooks.register_failed", extra={"fields": {
                **self._fields(), "reason": e.key}})
        log.info("webhooks.registration", extra={"fields": {**self._fields(),
                                                            **vars(self.counts)}})
        return self.counts

    # ---- what is due ----------------------------------------------------------------------
    def _due(self, record: dict[str, Any] | None, jql: str | None) -> Callable | None:
        now = self._ports.clock.now()
        if record is None:
            return None if jql is None else self._register
        if jql is None:
            return self._remove if record.get("status") in hooks.LIVE else None
        if (record.get("retry_at") or "") > isoformat(now):
            return None  # refused (unavailable, or a refused renewal): tried again a day later
        if record.get("status") != "active":
            return self._register
        if record.get("url") != self.url:
            return self._move
        if record.get("jql") != jql:
            return self._register
        expires = expiry(record.get("expires_at"))
        if expires is None or expires - now < RENEW_BEFORE:
            return self._renew
        return self._retire if record.get("retired_ids") else None

    def _still_active(self) -> bool:
        doc = self._ports.business.get("connections", self._connection) or {}
        site = doc.get("site") if isinstance(doc.get("site"), dict) else {}
        self._site = str(site.get("id") or "") or None
        return doc.get("status") == "active"

    # ---- steps ----------------------------------------------------------------------------
    def _register(self, record: dict[str, Any] | None, jql: str) -> None:
        """Create (or adopt) the webhook for ``jql``; an active one it replaces is retired."""
        active = record is not None and record.get("status") == "active"
        old = list(record.get("hook_ids") or ()) if active else []
        look_first = record is not None and record.get("pending") == jql
        intent = hooks.save(self._ports, {**self._base(), **(record or {})}, pending=jql,
                            url=self.url,
                            **({} if active else {"status": "registering", "hook_ids": []}))
        found = self._adoptable(jql, exclude=old) if look_first else None
        if found is not None:
            ids, expires = [str(found["id"])], expiry(found.get("expirationDate"))
        else:
            ids, expires = self._create(jql), None
        expires = expires or self._ports.clock.now() + timedelta(
            days=self._reg.expires_after_days or 0)
        retired = [i for i in (*old, *(intent.get("retired_ids") or ())) if i not in ids]
        saved = hooks.save(self._ports, intent, status="active", hook_ids=ids, jql=jql,
                           expires_at=isoformat(expires), pending=None, retired_ids=retired,
                           reason=None, retry_at=None, adopted=found is not None,
                           renewed_at=None)
        self.counts.adopted += found is not None
        self.counts.registered += found is None
        log.info("webhooks.adopted" if found is not None else "webhooks.registered",
                 extra={"fields": {**self._fields(), "replaced": len(old)}})
        if retired:
            self._retire(saved, jql)

    def _renew(self, record: dict[str, Any], jql: str) -> None:
        now, ours = self._ports.clock.now(), set(record.get("hook_ids") or ())
        expires = expiry(record.get("expires_at"))
        alive = {str(w["id"]) for w in (listed(self._client, self._spec)
                                        if expires is not None and expires > now else ())
                 if str(w["id"]) in ours and (expiry(w.get("expirationDate")) or now) >= now}
        if not ours or alive != ours:  # expired, or deleted at the provider: a new one
            self._register(record, jql)
            return
        answer = self._client.put(self._reg.templates["refresh"], {},
                                  json={"webhookIds": _wire(sorted(ours))}).body
        renewed = expiry(answer.get("expirationDate") if isinstance(answer, dict) else None)
        if renewed is None:
            raise MalformedResponse(f"{self._spec.name}: a refresh without an expirationDate")
        hooks.save(self._ports, record, expires_at=isoformat(renewed), renewed_at=isoformat(now),
                   reason=None, retry_at=None)
        self.counts.renewed += 1
        log.info("webhooks.renewed", extra={"fields": {**self._fields(),
                                                       "expires_at": isoformat(renewed)}})

    def _retire(self, record: dict[str, Any], jql: str | None = None) -> None:
        """Delete the ids of replaced webhooks; a failure keeps them for the next sync."""
        try:
            delete(self._client, self._spec, record["retired_ids"])
        except (ProviderUnavailable, MalformedResponse, ProviderRefused) as e:
            log.warning("webhooks.remove_failed", extra={"fields": {**self._fields(),
                                                                    "reason": e.key}})
            return
        except NotFoundAtProvider:
            pass
        hooks.save(self._ports, record, retired_ids=[])

    def _move(self, record: dict[str, Any], jql: str) -> None:
        """The public URL changed: delete the webhook at the old one, register anew."""
        self._delete_all(record)
        self._register(hooks.save(self._ports, record, status="registering", hook_ids=[],
                                  retired_ids=[], url=self.url), jql)

    def _remove(self, record: dict[str, Any], jql: None) -> None:
        self._delete_all(record)
        hooks.save(self._ports, record, status="removed", reason="webhooks.no_projects",
                   hook_ids=[], retired_ids=[], pending=None)

    def _delete_all(self, record: dict[str, Any]) -> None:
        ids = [*(record.get("hook_ids") or ()), *(record.get("retired_ids") or ())]
        try:
            if ids:
                delete(self._client, self._spec, ids)
        except NotFoundAtProvider:
            pass  # already gone

    # ---- helpers --------------------------------------------------------------------------
    def _create(self, jql: str) -> list[str]:
        body = {"url": self.url, "webhooks": [{"events": list(self._reg.events),
                                               "jqlFilter": jql}]}
        answer = self._client.post(self._reg.templates["create"], {}, json=body).body
        results = answer.get("webhookRegistrationResult") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != 1 or not isinstance(
                results[0], dict):
            raise MalformedResponse(f"{self._spec.name}: a registration without its result")
        created = results[0].get("createdWebhookId")
        if isinstance(created, int | str) and not isinstance(created, bool):
            return [str(created)]
        raise ProviderRefused(f"{self._spec.name}: the webhook was not registered",
                              key="webhooks.rejected", provider_status=200)

    def _adoptable(self, jql: str, exclude: Sequence[str]) -> dict[str, Any] | None:
        """A live webhook of the app with ``jql`` and our events that nobody else claims."""
        now = self._ports.clock.now()
        claimed = {*exclude, *claimed_elsewhere(self._ports.business, self._spec.name,
                                                self._site, self._connection)}
        return next((w for w in listed(self._client, self._spec)
                     if w.get("jqlFilter") == jql and str(w["id"]) not in claimed
                     and set(self._reg.events) <= set(w.get("events") or ())
                     and (expiry(w.get("expirationDate")) or now) > now), None)

    def _refused(self, error: NotFoundAtProvider | ProviderRefused) -> None:
        """Tried again after a day; a webhook that still lives keeps its record active."""
        now = self._ports.clock.now()
        retry_at = isoformat(now + RETRY_AFTER)
        current = hooks.for_connection(self._ports.business, self._connection).get(hooks.SITE)
        alive = (expiry((current or {}).get("expires_at")) or now) > now
        if current is not None and current.get("status") == "active" and alive:
            hooks.save(self._ports, current, reason=error.key, retry_at=retry_at)
        else:
            hooks.save(self._ports, {**self._base(), **(current or {})}, status="unavailable",
                       reason=error.key, retry_at=retry_at, pending=None)
        self.counts.unavailable += 1
        status = error.provider_status if isinstance(error, ProviderRefused) else 404
        log.info("webhooks.unavailable", extra={"fields": {**self._fields(), "status": status}})

    def _base(self) -> dict[str, Any]:
        return {"tenant": self._tenant, "provider": self._spec.name,
                "connection": self._connection, "repository": hooks.SITE,
                "external_id": self._site, "target": {}, "url": self.url, "hook_id": None,
                "hook_ids": [], "jql": None, "expires_at": None, "retired_ids": []}

    def _fields(self) -> dict[str, Any]:
        return {"provider": self._spec.name, "connection": self._connection,
                "external_id": self._site}
