"""``ingest``'s ``webhook.event`` handler: route an event, find its connections, write records.

Routing: each provider module (:mod:`shared.ingest.github`, :mod:`shared.ingest.gitlab`,
Routing: each provider module (:mod:`shared.ingest.github`, :mod:`shared.ingest.gitlab`,
:mod:`shared.ingest.bitbucket`, :mod:`shared.ingest.jira`) has a table of event name →
:class:`~shared.ingest.routes.Route`; a module with ``find_targets`` finds the connections
itself (Jira: by site, then project). An event type with no route is acknowledged and ignored
(``ingest.<provider>.ignored_event``). An event whose repository, project or installation
belongs to no connection is dropped (``ingest.<provider>.unknown_account``). A malformed
message or payload is a permanent error, logged with its key and acknowledged.

Idempotency — safe to deliver any number of times, in any order:

* What dedupes: ``webhook-P`` publishes a delivery id once, or again on a redelivery after
  its claim's lease with the same ``received_at`` (:mod:`shared.webhooks.deliveries`); beyond
  that every write is a :mod:`shared.records.store` upsert keyed by (tenant, provider,
  external id) that only writes a strictly newer ``updated_at``, and deletions are tombstones
  versioned by their time. So a second or third redelivery of the same event writes nothing
  (``unchanged``), and an older event arriving after a newer one changes nothing either.
  Connection state changes are versioned by the webhook's arrival time the same way.
* Side effects that are not records — a follow-up ``sync.requested`` — may be published again
  by a redelivery; the vault and the fetcher make a repeated sync cheap (leases, cursors).
* Too old: there is no age cut-off for records, because versions decide (an old event loses
  to newer data and wins only over older data). Follow-up syncs carry the webhook's arrival
  time as ``requested_at``, and the vault ignores requests older than an hour.
* A retryable failure (store or bus unavailable) raises, so Pub/Sub redelivers the event.
"""

from __future__ import annotations

from types import ModuleType

from shared import messages
from shared.ingest import bitbucket, github, gitlab, jira
from shared.ingest import targets as find
from shared.ingest.event import Event, Target, apply
from shared.ingest.routes import Route
from shared.ingest.sync import request_sync
from shared.log import get_logger
from shared.ports import Ports

log = get_logger("keyway.ingest")
PROVIDERS: dict[str, ModuleType] = {"github": github, "gitlab": gitlab, "bitbucket": bitbucket,
                                    "jira": jira}


def _fields(event: Event, **extra: object) -> dict:
    return {"event": event.name, "delivery": event.delivery, "connection": event.connection,
            **extra}


def _targets(ports: Ports, event: Event, provider: ModuleType, scope: str) -> list[Target]:
    if hasattr(provider, "find_targets"):  # ids unique per site only: the provider finds them
        return provider.find_targets(ports, event)
    if scope == "installation":
        return find.for_installation(ports, event, provider.installation_of(event.payload))
    return find.for_repository(ports, event, provider.repository_of(event.payload))


def _omitted(ports: Ports, event: Event) -> None:
    """An event too large to carry: ask for a sync of every connection it concerns."""
    subject = event.subject
    found = find.for_repository(ports, event, subject.get("repository", subject.get("project")))
    found += find.for_installation(ports, event, subject.get("installation"))
    if not found:
        log.info(f"ingest.{event.provider}.unknown_account", extra={"fields": _fields(event)})
    for connection in {t.connection: t for t in found}.values():
        request_sync(ports, event, connection.context(event))


def on_webhook_event(ports: Ports, inbound: messages.Inbound) -> None:
    """Apply one verified webhook event (see the module docstring for idempotency)."""
    event = Event.parse(inbound)
    provider = PROVIDERS.get(event.provider)
    if provider is None:
        log.info(f"ingest.{event.provider}.ignored_event", extra={"fields": _fields(event)})
        return
    if event.omitted:
        _omitted(ports, event)
        return
    name = provider.event_name(event)
    route: Route | None = provider.ROUTES.get(name)
    reason = "no route" if route is None else route.skip(event)
    if route is None or reason is not None:
        log.info(f"ingest.{event.provider}.ignored_event",
                 extra={"fields": _fields(event, kind=name[:60], reason=reason)})
        return
    _apply(ports, event, route, provider)


def _apply(ports: Ports, event: Event, route: Route, provider: ModuleType) -> None:
    found = _targets(ports, event, provider, route.scope)
    if not found:
        log.info(f"ingest.{event.provider}.unknown_account", extra={"fields": _fields(event)})
        return
    written = unchanged = 0
    for target in found:
        changes = route.normalize(event, target.context(event), ports)
        done, same = apply(ports, changes, target.connection)
        written, unchanged = written + done, unchanged + same
    log.info(f"ingest.{event.provider}.applied", extra={"fields": _fields(
        event, targets=len(found), written=written, unchanged=unchanged)})


HANDLERS = {"webhook.event": on_webhook_event}
