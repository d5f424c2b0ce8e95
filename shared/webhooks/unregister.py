"""``vault-P`` removes keyway's webhooks on disconnect, in-process, with the plaintext app token
it holds and before it revokes that token (:meth:`shared.vault.service.VaultService.disconnect`
calls the cleanup :func:`remover` builds).

For every ``webhook_registrations`` record of the connection that may have a hook at the
provider (``active``; ``registering`` — then the hook is looked up by our URL first; or any
other state but ``removed`` that knows a hook id, such as a hook marked unreachable): one
DELETE through the metadata-only client on the connection's own API base (allowlisted hook
templates only) → ``removed``. 404 counts as removed too (already gone, or no longer
visible to the user; ``reason`` says ``provider.not_found``). Any other failure — the token
already revoked (401), the provider down, the time budget spent — logs
``webhooks.remove_failed`` and marks the record ``remove_failed``: disconnect goes on, the
vault still deletes the token and the per-connection secret, so a stray delivery to such a
hook then gets 404 ``unknown_connection`` at ``webhook-P``. After a 401, or a refusal saying
the token lacks the hook scope (``provider.insufficient_scope``: every other hook would be
refused alike), no further request is sent. The work stops after :data:`BUDGET_SECONDS` so a
connection with very many repositories still finishes inside the subscription's ack deadline;
the rest are ``remove_failed`` (``webhooks.out_of_time``).

A ``site`` registration (Jira's dynamic webhooks, :mod:`shared.webhooks.dynamic`) has one
record per connection: its ``hook_ids`` and ``retired_ids`` go in one ``DELETE`` with the ids
in the body; an intent whose webhook id was never learnt is looked up among the app's webhooks
by its ``jqlFilter`` first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from shared.errors import KeywayError
from shared.fetch.client import ProviderClient, connection_api_base, shared_session
from shared.fetch.errors import InsufficientScope, NotFoundAtProvider, TokenRejected
from shared.log import get_logger
from shared.ports import Ports
from shared.providers import registry
from shared.providers.schema import ProviderSpec
from shared.webhooks import dynamic, hooks

BUDGET_SECONDS = 40.0
log = get_logger("keyway.webhooks")


def remover(ports: Ports, provider: str, tenant: str,
            connection: str) -> Callable[[str], None] | None:
    """The cleanup to run with the connection's access token, or None when there is nothing
    keyway registered (or the connection is not ``tenant``'s)."""
    record = ports.business.get("connections", connection)
    spec = registry.get(provider)
    if (record is None or record.get("tenant") != tenant or record.get("provider") != provider
            or spec.webhook_registration is None):
        return None
    live = [r for r in hooks.for_connection(ports.business, connection).values()
            if (r.get("status") in hooks.LIVE or r.get("hook_id")) and r.get("tenant") == tenant
            and r.get("status") != "removed"]
    if not live:
        return None
    api_base = connection_api_base(spec, record)
    return functools.partial(remove, ports, spec, api_base, live)


def remove(ports: Ports, spec: ProviderSpec, api_base: str, live: list[dict[str, Any]],
           token: str) -> None:
    """Delete every hook in ``live`` (see the module docstring); never raises a KeywayError."""
    deadline = ports.clock.monotonic() + BUDGET_SECONDS
    stop: str | None = None
    try:
        client = ProviderClient(spec, api_base, token, shared_session(), ports.clock,
                                purpose="unhook", max_attempts=1)
    except KeywayError as e:
        client, stop = None, e.key
    for record in live:
        if stop is None and ports.clock.monotonic() > deadline:
            stop = "webhooks.out_of_time"
        if stop is not None or client is None:
            _failed(ports, record, stop or "webhooks.remove_failed")
            continue
        try:
            _delete(ports, client, spec, record)
        except NotFoundAtProvider as e:
            hooks.save(ports, record, status="removed", reason=e.key)
        except KeywayError as e:
            _failed(ports, record, e.key)
            if isinstance(e, TokenRejected | InsufficientScope):
                stop = e.key
        else:
            hooks.save(ports, record, status="removed", reason=None)


def _delete(ports: Ports, client: ProviderClient, spec: ProviderSpec,
            record: dict[str, Any]) -> None:
    reg = spec.webhook_registration
    assert reg is not None
    if reg.kind == "site":
        _delete_site(ports, client, spec, record)
        return
    params = dict(record.get("target") or {})
    hook_id = record.get("hook_id")
    if not hook_id:  # "registering": created or not, we never learnt its id
        found = hooks.find(client.get(reg.templates["list"], params).body, spec.name,
                           record.get("url") or "")
        if found is None:
            return
        hook_id = str(found["id"])
    client.delete(reg.templates["delete"], {**params, "hook_id": str(hook_id)})


def _delete_site(ports: Ports, client: ProviderClient, spec: ProviderSpec,
                 record: dict[str, Any]) -> None:
    ids = [*(record.get("hook_ids") or ()), *(record.get("retired_ids") or ())]
    pending = record.get("pending")
    if pending:  # a registration whose id was never learnt: the webhook with its filter
        claimed = {*ids, *dynamic.claimed_elsewhere(ports.business, spec.name,
                                                    record.get("external_id"),
                                                    record["connection"])}
        ids += [str(w["id"]) for w in dynamic.listed(client, spec)
                if w.get("jqlFilter") == pending and str(w["id"]) not in claimed]
    if ids:
        dynamic.delete(client, spec, ids)


def _failed(ports: Ports, record: dict[str, Any], reason: str) -> None:
    hooks.save(ports, record, status="remove_failed", reason=reason)
    log.warning("webhooks.remove_failed", extra={"fields": {
        "provider": record.get("provider"), "connection": record.get("connection"),
        "external_id": record.get("external_id"), "reason": reason}})

