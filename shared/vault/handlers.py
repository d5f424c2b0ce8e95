"""vault-P's message handlers: ``sync.requested``, ``action.requested``, ``connection.disconnect``.

Idempotency:

* ``sync.requested`` — deduped downstream: a redelivered request releases a fresh envelope
  (new nonce) and publishes another ``fetch.job`` for the same (connection, due_at); the
  fetcher's cursors make a second run of the same sync cheap and harmless. A request for a
  connection whose token needs re-authorization is acknowledged; the status is recorded
  (``needs_reauth`` with ``status_reason`` ``vault.needs_reauth``, or ``vault.undecryptable``
  when the stored token no longer decrypts, e.g. after a forced key retirement or when the
  record was rolled back to an older generation), and the sync
  ends ``failed`` with that reason. A retryable failure (KMS, secrets, store or bus down) is
  raised for the bus to redeliver, and the sync shows ``retrying`` with the error's key: if
  the bus dead-letters the request, the scheduler's tick asks again once its ``recover_at``
  passes, and ends it ``failed`` after the last attempt (:mod:`shared.fetch.recovery`).
* ``action.requested`` — keyed by ``(tenant, action_id)``; act-P dedupes on it, so a third delivery
  publishes a third job that act-P acknowledges without acting twice. A requester with no
  linked identity gets the action marked ``failed`` with reason ``no_personal_token``; one
  whose token needs re-authorization or no longer decrypts gets ``needs_reauth`` /
  ``undecryptable``, and the identity the same ``status`` and ``status_reason`` as a
  connection would.
* ``connection.disconnect`` (only from ``connection-control-P``, the topic only ``api`` may
  publish to; one arriving on ``sync-requests-P`` is refused before any handler runs, see
  :mod:`shared.policy`) — first the hooks keyway registered are deleted at the provider
  with the token (:mod:`shared.webhooks.unregister`), then the token is revoked and deleted,
  then the per-connection webhook secret is deleted (providers that register webhooks); a
  redelivery finds the token gone
  (answered as done, the hooks already handled) and deletes what is left of the secret. A
  Secret Manager outage raises, so the message is redelivered until the secret is gone.

Messages older than ``STALE_AFTER`` (by their ``requested_at``) are not acted on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta

from shared import bootstrap, health, messages
from shared.actions import model as actions_model
from shared.actions.request import unavailable_reason
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput, NotFound, RetryableError
from shared.fetch import recovery
from shared.log import get_logger
from shared.notify import sources as notify
from shared.ports import Ports
from shared.providers import registry
from shared.vault import grants
from shared.vault.endpoints import endpoint_for
from shared.vault.records import personal_id
from shared.vault.refresh import NeedsReauth
from shared.vault.release import ReleaseRefused
from shared.vault.service import NoPersonalToken, VaultService
from shared.webhooks import secrets as webhook_secrets
from shared.webhooks import unregister
from shared.webhooks.hooks import uses_connection_secret

STALE_AFTER = timedelta(hours=1)
log = get_logger("keyway.vault")


_SERVICES: dict[tuple[str, int], VaultService] = {}


def _resolver(provider: str, ports: Ports):
    """The provider's cloud endpoint (cached per instance), or a registered host's, read at
    each use so a removed host is unusable at once."""
    cache: dict[None, object] = {}

    def resolve(doc: Mapping):
        if doc.get("host") or doc.get("base_url"):
            return endpoint_for(provider, ports, base_url=doc.get("base_url"),
                                host=doc.get("host"), tenant=doc.get("tenant"))
        if None not in cache:
            cache[None] = endpoint_for(provider, ports)
        return cache[None]

    return resolve


def service(provider: str, ports: Ports) -> VaultService:
    """One service per (provider, ports) per instance: its data keys stay cached."""
    key = (provider, id(ports))
    if key not in _SERVICES:
        _SERVICES[key] = VaultService(provider, ports, _resolver(provider, ports))
    return _SERVICES[key]


def _field(body: Mapping, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"message lacks {name}", key="vault.bad_message")
    return value


def _fresh_enough(ports: Ports, body: Mapping) -> bool:
    requested = body.get("requested_at")
    if not requested:
        return True
    return ports.clock.now() - parse_iso(str(requested)) <= STALE_AFTER


def on_sync_requested(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    body = inbound.body
    tenant, connection = _field(body, "tenant"), _field(body, "connection")
    if not _fresh_enough(ports, body):
        log.info("vault.stale_request", extra={"fields": {"connection": connection}})
        return
    lease = timedelta(seconds=bootstrap.config().sync_lease_seconds)
    try:
        envelope = service(provider, ports).release_for_fetch(tenant, connection, inbound.sender)
        messages.publish(ports.bus, f"vault-{provider}", f"fetch-jobs-{provider}", "fetch.job",
                         {"tenant": tenant, "connection": connection,
                          "scope": body.get("scope") or "all", "resume": body.get("resume"),
                          "envelope": envelope},
                         ordering_key=connection)
    except NeedsReauth as e:  # Undecryptable too: reason vault.undecryptable
        _set_connection_status(ports, tenant, connection, "needs_reauth", reason=e.key)
        recovery.request_failed(ports, provider, tenant, connection, e.key, lease, final=True)
        raise
    except RetryableError as e:  # redelivered by the bus; if it dead-letters, the tick asks
        recovery.request_failed(ports, provider, tenant, connection, e.key, lease, final=False)
        raise


def on_action_requested(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    body = inbound.body
    tenant, user = _field(body, "tenant"), _field(body, "user")
    action_id, connection = _field(body, "action_id"), _field(body, "connection")
    if not isinstance(body.get("action"), dict):
        raise InvalidInput("message lacks action", key="vault.bad_message")
    _check_action_record(provider, ports, tenant, user, action_id, connection)
    record = ports.business.get("connections", connection) or {}
    if (why := unavailable_reason(record)) is not None:  # disconnected since it was asked
        _fail_action(ports, tenant, action_id, f"connection_{why}")
        log.info("vault.action_connection_unavailable", extra={"fields": {
            "connection": connection, "status": why}})
        return
    try:
        envelope = service(provider, ports).release_for_action(tenant, user, connection)
    except (NoPersonalToken, NeedsReauth) as e:
        _fail_action(ports, tenant, action_id, e.key.removeprefix("vault."))
        if isinstance(e, NeedsReauth):
            _set_identity_status(ports, provider, tenant, user, "needs_reauth", e.key)
        raise
    messages.publish(ports.bus, f"vault-{provider}", f"action-jobs-{provider}", "action.job",
                     {"tenant": tenant, "action_id": action_id, "connection": connection,
                      "action": body["action"], "envelope": envelope},
                     ordering_key=action_id)


def _check_action_record(provider: str, ports: Ports, tenant: str, user: str, action_id: str,
                         connection: str) -> None:
    """Release a personal token only for a pending action that this very user created in this
    tenant, on this provider and connection — the message alone is never trusted to name whose
    token to release. A mismatch is refused and audited."""
    action = ports.business.get(actions_model.COLLECTION, actions_model.doc_id(tenant, action_id))
    expected = {"tenant": tenant, "user": user, "provider": provider, "connection": connection,
                "status": "pending"}
    if action is None or any(action.get(k) != v for k, v in expected.items()):
        service(provider, ports).audit.append(
            "release", requester=user, recipient=f"act-{provider}", purpose="action",
            connection=connection, outcome="refused:vault.action_mismatch")
        raise ReleaseRefused("no pending action of this user matches the request",
                             key="vault.action_mismatch")


def on_disconnect(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    body = inbound.body
    tenant, connection = _field(body, "tenant"), _field(body, "connection")
    cleanup = unregister.remover(ports, provider, tenant, connection)
    try:
        service(provider, ports).disconnect(tenant, connection, inbound.sender, cleanup,
                                            revoke=not grants.shared_grant(ports, provider,
                                                                           connection))
    except NotFound:
        log.info("vault.already_disconnected", extra={"fields": {"connection": connection}})
    if _registers_hooks(ports, provider, tenant, connection):
        webhook_secrets.delete_connection_secrets(ports.secrets, connection)
    _set_connection_status(ports, tenant, connection, "disconnected")


def on_unlink(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    """``identity.unlink`` (only from ``connection-control-P``): delete the user's personal
    token (revoked unless its grant is shared, :mod:`shared.vault.grants`), then the identity.
    Idempotent: a repeat finds nothing left to delete."""
    body = inbound.body
    tenant, user = _field(body, "tenant"), _field(body, "user")
    shared = grants.identity_shares_grant(ports, provider, tenant, user)
    service(provider, ports).unlink(tenant, user, inbound.sender, revoke=not shared)
    identity = personal_id(provider, tenant, user)
    doc = ports.business.get("identities", identity)
    if doc is not None and doc.get("tenant") == tenant:
        ports.business.delete("identities", identity)


def _registers_hooks(ports: Ports, provider: str, tenant: str, connection: str) -> bool:
    """Whether this is ``tenant``'s connection of a provider that registers webhooks signed
    with a per-connection secret (whose token component alone may delete
    ``webhook-secret-<connection>``: infra/secrets.tf)."""
    record = ports.business.get("connections", connection)
    return (uses_connection_secret(registry.get(provider)) and record is not None
            and record.get("tenant") == tenant and record.get("provider") == provider)


def _set_connection_status(ports: Ports, tenant: str, connection: str, status: str,
                           reason: str | None = None) -> None:
    """Write the connection's ``status`` and ``status_reason`` (a stable key, or ``None``),
    then record its health if that changed (:func:`shared.health.observe`)."""
    health.mark(ports, tenant, connection, status, reason)


def _set_identity_status(ports: Ports, provider: str, tenant: str, user: str, status: str,
                         reason: str) -> None:
    """Mark the user's linked identity (``identities/<provider>:<tenant>:<user>``); a change to
    ``needs_reauth`` is notified (``identity.needs_reauth``)."""
    identity = personal_id(provider, tenant, user)
    before = ports.business.get("identities", identity) or {}
    _set_status(ports, "identities", identity, tenant, status, reason)
    if status == "needs_reauth" and before.get("status") != status:
        notify.identity_needs_reauth(ports, tenant, identity,
                                     ports.business.get("identities", identity) or {})


def _set_status(ports: Ports, collection: str, doc_id: str, tenant: str, status: str,
                reason: str | None) -> None:
    """``status``, ``status_reason`` and when they changed, on the tenant's own document."""
    def write(tx):
        doc = tx.get(collection, doc_id)
        if doc is not None and doc.get("tenant") == tenant:
            tx.put(collection, doc_id, dict(doc, status=status, status_reason=reason,
                                            status_changed_at=isoformat(ports.clock.now())))

    ports.business.transaction(write)


def _fail_action(ports: Ports, tenant: str, action_id: str, reason: str) -> None:
    key = actions_model.doc_id(tenant, action_id)

    def write(tx):
        doc = tx.get(actions_model.COLLECTION, key)
        if doc is not None and doc.get("tenant") == tenant and doc.get("status") == "pending":
            doc = dict(doc, status="failed", reason=reason,
                       finished_at=isoformat(ports.clock.now()))
            tx.put(actions_model.COLLECTION, key, doc)
            return doc
        return None

    failed = ports.business.transaction(write)
    if failed is not None:
        notify.action_ended(ports, tenant, action_id, failed)  # action.failed


def on_recover(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    """``deliveries.recover`` (only from ``delivery-recovery-P``, the scheduler's): read the
    provider's delivery log with a credential this component holds and ingest what keyway
    missed (:mod:`shared.webhooks.recovery_job`; idempotent by delivery id). A connection
    whose token needs re-authorization is skipped: its syncs report that."""
    from shared.vault.records import APP
    from shared.webhooks import recovery_job

    def token_of(connection: str) -> str:
        return service(provider, ports).refresher.fresh(APP, connection).access_token

    try:
        recovery_job.recover(provider, ports, dict(inbound.body), token_of)
    except NeedsReauth as e:
        log.info("deliveries.needs_reauth", extra={"fields": {
            "connection": inbound.body.get("connection"), "reason": e.key}})


def handlers(provider: str) -> dict:
    return {
        "deliveries.recover": functools.partial(on_recover, provider),
        "sync.requested": functools.partial(on_sync_requested, provider),
        "action.requested": functools.partial(on_action_requested, provider),
        "connection.disconnect": functools.partial(on_disconnect, provider),
        "identity.unlink": functools.partial(on_unlink, provider),
    }
