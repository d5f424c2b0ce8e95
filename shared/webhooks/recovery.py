"""Webhook gap recovery: deliveries the provider logged that keyway never recorded are ingested
from the log's stored payload, or redelivered by the provider.

One *source* is one hook's delivery log as the provider serves it (GitHub: the App's webhook,
or a repository hook keyway registered; Jira: the app's failed deliveries on a site; readers in
:mod:`shared.webhooks.recovery_sources`). For each source, :func:`run`:

1. reads the entries after its watermark (``delivery_watermarks/<source key>``), oldest first;
   a provider error or an answer of an unknown shape raises out of the reader, is logged as
   ``deliveries.<provider>.<reason>`` and leaves the watermark where it was (a 404 for the
   log itself sets :attr:`Outcome.gone`: the caller stops treating that hook as live);
2. for each entry, in order: keyway recorded its delivery id (``webhook_deliveries``, the
   claim ``webhook-P`` makes, :mod:`shared.webhooks.deliveries`) → nothing to do; else the
   entry is *missed*: the stored payload, when the provider returns one, is claimed under the
   same delivery key ``webhook-P`` would have used (``via: recovery``) and published as
   ``webhook.event`` on ``events-P`` (``verified_by: provider_api``); without a payload, the
   provider is asked to redeliver (the redelivery carries the same id, so ``webhook-P``
   claims it once); with neither, ``deliveries.<provider>.unrecoverable`` is logged and the
   next sync has to catch it;
3. moves the watermark past the entries handled, and only those: it stops at the first entry
   it could not handle (a payload it could not read, a refused redelivery, a claim of its own
   still inside the lease), so the next run starts there.

Nothing lost, nothing applied twice: a crash before the watermark is saved makes the next run
read the same entries; those recorded meanwhile are skipped; a claim this job made but whose
publish never happened (``via: recovery``, older than the claim's lease) is taken over and
published again — ``ingest`` applies a second publish of one delivery as the no-op it is
(records keep the newest version) — and a redelivery the provider sends twice meets the
same ``webhook_deliveries`` claim and is answered ``duplicate``.

Authenticity: a payload taken from the log was not signed for keyway, so it is trusted for
another reason: it came over TLS from the provider's configured API host (the connection's
``api_base``, checked against SSRF at each request, redirects refused —
:mod:`shared.http_egress`), in answer to a request keyway authenticated with the provider
credential only the provider could have issued (the App's JWT, the connection's token). An
attacker would need to impersonate the provider's API host, which also defeats every sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import messages
from shared.errors import KeywayError
from shared.fetch.errors import NotFoundAtProvider
from shared.log import get_logger
from shared.ports import Ports
from shared.webhooks import deliveries

WATERMARKS = "delivery_watermarks"
VERIFIED_BY = "provider_api"
log = get_logger("keyway.webhooks.recovery")


@dataclass(frozen=True)
class Entry:
    """One delivery attempt in a provider's log. ``position`` orders the log (GitHub's
    delivery id, Jira's failure time); ``guid`` is the id keyway records (``X-GitHub-Delivery``,
    ``X-Atlassian-Webhook-Identifier``)."""

    position: int
    guid: str
    event: str
    ref: str  # what the reader needs to fetch or redeliver it (GitHub's delivery id)
    payload: dict[str, Any] | None = None  # when the listing already carries it (Jira)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    """A delivery's stored request: the forwarded headers and the JSON payload."""

    headers: dict[str, str]
    payload: dict[str, Any]


class Source(Protocol):
    """One hook's delivery log (see :mod:`shared.webhooks.recovery_sources`)."""

    provider: str
    key: str  # the watermark's document id
    connection: str | None  # the delivery's scope in webhook_deliveries (per-connection hooks)

    def entries(self, after: int | None) -> list[Entry]: ...

    def stored(self, entry: Entry) -> Stored | None: ...

    def redeliver(self, entry: Entry) -> bool: ...


@dataclass
class Outcome:
    """What one run did to one source."""

    read: int = 0
    recorded: int = 0
    ingested: int = 0
    redelivered: int = 0
    unrecoverable: int = 0
    stopped: str | None = None  # the stable key of what stopped it, if anything
    watermark: int | None = None
    gone: bool = False  # the log itself answered 404: the hook or its repository is out of reach


def watermark(ports: Ports, key: str) -> int | None:
    doc = ports.business.get(WATERMARKS, key)
    value = (doc or {}).get("position")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _save(ports: Ports, source: Source, position: int) -> None:
    """Move the watermark forward (never back: two runs may overlap)."""
    def write(tx: Any) -> None:
        current = tx.get(WATERMARKS, source.key) or {}
        if isinstance(current.get("position"), int) and current["position"] >= position:
            return
        tx.put(WATERMARKS, source.key, {"provider": source.provider, "position": position,
                                        "connection": source.connection})

    ports.business.transaction(write)


def run(ports: Ports, source: Source) -> Outcome:
    """Recover what ``source`` logged and keyway missed (see the module docstring)."""
    outcome = Outcome(watermark=watermark(ports, source.key))
    fields = {"provider": source.provider, "source": source.key}
    try:
        entries = source.entries(outcome.watermark)
    except KeywayError as e:
        outcome.stopped, outcome.gone = e.key, isinstance(e, NotFoundAtProvider)
        log.warning(f"deliveries.{source.provider}.read_failed",
                    extra={"fields": {**fields, "reason": e.key}})
        return outcome
    outcome.read = len(entries)
    handled, seen = outcome.watermark, set()
    for entry in entries:
        try:
            done = entry.guid in seen or _handle(ports, source, entry, outcome)
        except KeywayError as e:
            done, outcome.stopped = False, e.key
            log.warning(f"deliveries.{source.provider}.recover_failed",
                        extra={"fields": {**fields, "delivery": entry.guid, "reason": e.key}})
        if not done:
            outcome.stopped = outcome.stopped or "deliveries.pending"
            handled = _before(entries, entry, outcome.watermark)
            break
        seen.add(entry.guid)
        handled = entry.position
    if handled is not None and handled != outcome.watermark:
        _save(ports, source, handled)
        outcome.watermark = handled
    log.info(f"deliveries.{source.provider}.recovered", extra={"fields": {
        **fields, "read": outcome.read, "ingested": outcome.ingested,
        "redelivered": outcome.redelivered, "unrecoverable": outcome.unrecoverable,
        "stopped": outcome.stopped}})
    return outcome


def _before(entries: list[Entry], stop: Entry, previous: int | None) -> int | None:
    """The last position wholly handled before ``stop``: entries sharing ``stop``'s position
    stay after the watermark (a log read "after" a position skips all of that position)."""
    earlier = [e.position for e in entries[:entries.index(stop)] if e.position < stop.position]
    return max(earlier, default=previous)


def _handle(ports: Ports, source: Source, entry: Entry, outcome: Outcome) -> bool:
    """True when ``entry`` needs nothing more from this job."""
    key = deliveries.doc_id(source.provider, deliveries.normalize_id(entry.guid, b""),
                            source.connection)
    record = ports.business.get(deliveries.COLLECTION, key)
    if record is not None and record.get("via") != "recovery":
        outcome.recorded += 1
        return True
    stored = source.stored(entry)
    if stored is not None:
        return _ingest(ports, source, entry, key, stored, outcome)
    if record is not None:  # ours, but the payload is gone from the log: nothing more to do
        outcome.recorded += 1
        return True
    if source.redeliver(entry):
        outcome.redelivered += 1
        return True
    outcome.unrecoverable += 1
    log.warning(f"deliveries.{source.provider}.unrecoverable",
                extra={"fields": {"source": source.key, "delivery": entry.guid}})
    return True


def _ingest(ports: Ports, source: Source, entry: Entry, key: str, stored: Stored,
            outcome: Outcome) -> bool:
    delivery = deliveries.normalize_id(entry.guid, b"")
    fields = {"provider": source.provider, "delivery": delivery, "event": entry.event,
              "connection": source.connection, "via": "recovery"}
    claimed = deliveries.claim(ports.business, ports.clock, key, fields)
    if claimed is None:  # a claim inside its lease: webhook-P or another run is on it
        return False
    try:
        publish(ports, source.provider, {**fields, "verified_by": VERIFIED_BY,
                                         "received_at": claimed.received_at},
                stored.headers, stored.payload)
    except BaseException:
        deliveries.release(ports.business, key, claimed.owner)
        raise
    outcome.ingested += 1
    return True


def publish(ports: Ports, provider: str, fields: dict[str, Any], headers: dict[str, str],
            payload: dict[str, Any]) -> None:
    """``webhook.event`` on ``events-P`` from ``vault-P``, in ``webhook-P``'s message shape."""
    from shared.webhooks.pipeline import subject  # the same stand-in for an oversize payload

    sender = f"vault-{provider}"
    message = {k: v for k, v in fields.items() if k != "via"}
    message = {**message, "headers": headers, "payload": payload}
    data, attributes = messages.encode(sender, "webhook.event", message)
    if len(data) > messages.MAX_BODY_BYTES:
        data, attributes = messages.encode(sender, "webhook.event", {
            **message, "payload": None, "payload_omitted": True, "subject": subject(payload)})
    messages.publish_encoded(ports.bus, f"events-{provider}", data, attributes)


def run_all(ports: Ports, sources: Iterable[Source]) -> list[Outcome]:
    return [run(ports, source) for source in sources]
