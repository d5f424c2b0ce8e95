"""fetch-P's ``fetch.job`` handler: open the sealed token, sync, record the outcome.

Idempotent: everything it writes is an upsert keyed by (tenant, provider, external id) that
never lets older data win, and cursors advance only after their records are written. The
dedupe key is the envelope's nonce: each envelope opens once. A second, third or concurrent
delivery of a job whose envelope was already opened (or has expired: five minutes after the
vault sealed it) cannot run, so it is acknowledged and handed to :mod:`shared.fetch.recovery`:
if the sync it belongs to stopped without finishing (its run died and the lease ran out) a
continuation is asked of the vault, which seals a fresh envelope, and the next run resumes
from the checkpoints (re-fetching the pages read since the last one,
:data:`shared.fetch.walk.CHECKPOINT_SECONDS`); while a run holds the lease, or once the
sync has ended, nothing is done. A job whose envelope opens while another run holds the lease
is acknowledged with nothing done.

Outcomes: finished → ``done``; time budget spent → a continuation ``sync.requested`` goes back
to the vault (which seals a fresh token) → ``continuing``; rate limit or budget spent → the
connection's ``next_sync_at`` moves to the reset time → ``waiting`` (no spinning); a transient
failure (5xx, timeouts, a malformed answer, a backend outage) → ``retrying`` with ``retry_at``
(backoff with jitter), asked for again by the scheduler's tick and resumed from the
checkpoints, ``failed`` with the error's key after the sync's last attempt
(:mod:`shared.fetch.recovery`); the provider refused the token → ``failed``
(``provider.token_rejected``), as does any other permanent error (its key; ``fetch.error``
for an unexpected one); the token lacks a scope
an endpoint needs (the scopes asked for, or consented to, are too narrow) → ``failed``
(``provider.insufficient_scope``), stored records untouched. A child list the provider refuses
for good (403/404, GraphQL ``FORBIDDEN``) does not fail the job: it ends ``done`` with
``degraded`` and ``missing`` in the status (:mod:`shared.fetch.status`), is acknowledged, and
the next sync reads the missing children first.

A connection whose admin left webhook registration on also registers keyway's hooks on the
repositories that have none yet, with the same client and token (:mod:`shared.webhooks.register`)
— for Jira, its one dynamic webhook, renewed by the sync before it expires
(:mod:`shared.webhooks.dynamic`).
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import timedelta

from shared import bootstrap, health, messages
from shared.adapters.governor import governed
from shared.clock import isoformat
from shared.crypto.seal import EnvelopeExpired, EnvelopeReplayed
from shared.errors import (
    InvalidInput,
    KeywayError,
    NotFound,
    PolicyViolation,
    RetryableError,
)
from shared.fetch import reconcile, recovery, status
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient, connection_api_base, shared_session
from shared.fetch.errors import BudgetExhausted, InsufficientScope, RateLimited, TokenRejected
from shared.fetch.github.plan import PLAN as GITHUB
from shared.fetch.gitlab.plan import PLAN as GITLAB
from shared.fetch.jira.plan import PLAN as JIRA
from shared.fetch.progress import Progress
from shared.fetch.reconcile_sweep import Tally
from shared.fetch.sync import SyncRun
from shared.log import get_logger
from shared.ports import Ports
from shared.providers import registry
from shared.vault.receive import open_pushed_token
from shared.webhooks import register

PLANS = {"github": GITHUB, "gitlab": GITLAB, "bitbucket": BITBUCKET, "jira": JIRA}
log = get_logger("keyway.fetch")


def on_fetch_job(provider: str, ports: Ports, inbound: messages.Inbound) -> None:
    body = inbound.body
    tenant, connection = body.get("tenant"), body.get("connection")
    if not isinstance(tenant, str) or not isinstance(connection, str):
        raise InvalidInput("fetch job lacks tenant or connection", key="fetch.bad_message")
    try:
        claims, token = open_pushed_token(ports, f"fetch-{provider}", body.get("envelope"),
                                          "fetch")
    except (EnvelopeReplayed, EnvelopeExpired) as e:
        _unusable_envelope(provider, ports, connection, e.key)
        return
    if claims.connection != connection:
        raise PolicyViolation("envelope is for another connection", key="fetch.wrong_connection")
    record = ports.business.get("connections", connection)
    if record is None or record.get("tenant") != tenant or record.get("provider") != provider:
        raise NotFound("no such connection", key="fetch.unknown_connection")
    owner = status.begin(ports, tenant, connection, _lease())
    if owner is None:
        log.info("fetch.already_running", extra={"fields": {"connection": connection}})
        return
    _run(provider, ports, tenant, connection, record, token, owner,
         body.get("resume") == "checkpoint")


def _run(provider: str, ports: Ports, tenant: str, connection: str, record: dict, token: str,
         owner: str, continuation: bool) -> None:
    spec = registry.get(provider)
    api_base = connection_api_base(spec, record)
    budget = TokenBudget(ports.business, ports.clock, budget_key(provider, connection),
                         blocks=True)  # one budget write per block of requests
    client = ProviderClient(spec, api_base, token, shared_session(), ports.clock, budget,
                            purpose="fetch")
    config = bootstrap.config()
    ports = dataclasses.replace(ports, business=governed(  # 500/50/5 on Firestore
        ports.business, config.backend, config.write_ramp_start, ports.clock))
    hooks = register.registrar(ports, client, spec, PLANS[provider], tenant, record, connection,
                               config.public_url)
    run = SyncRun(ports, client, PLANS[provider], tenant, connection,
                  config.sync_budget_seconds, continuation,
                  on_repositories=hooks.ensure if hooks else None,
                  progress=Progress(ports, connection, owner, budget),
                  totals_period=timedelta(hours=config.reconcile_totals_hours))
    try:
        result = run.run()
        if result.finished:
            _reconcile(ports, client, provider, tenant, connection, budget, run, config)
    except BaseException as e:
        _return_blocks(budget)
        if _stopped(ports, tenant, connection, owner, e, vars(run.stats),
                    config.sync_retry_seconds):
            raise
        return
    _return_blocks(budget)
    if result.finished:
        status.end(ports, connection, owner, "done", stats=vars(run.stats))
        return
    messages.publish(ports.bus, f"fetch-{provider}", f"sync-requests-{provider}",
                     "sync.requested", {"tenant": tenant, "connection": connection,
                                        "scope": "all", "resume": "checkpoint",
                                        "requested_at": isoformat(ports.clock.now())},
                     ordering_key=connection)
    status.end(ports, connection, owner, "continuing", stats=vars(run.stats),
               recover_at=ports.clock.now() + _lease())


def _reconcile(ports: Ports, client: ProviderClient, provider: str, tenant: str,
               connection: str, budget: TokenBudget, run: SyncRun, config) -> None:
    """The periodic full id sweeps that are due (:mod:`shared.fetch.reconcile`), after a sync
    that finished, from spare budget only; their requests and tombstones count in the run's
    figures. It has a sync budget of its own (``KEYWAY_SYNC_BUDGET_SECONDS``), so sync and
    cycle together stay inside the run's lease; what it did not reach stays due. A rate limit
    or a transient failure stops it without undoing the sync that finished (logged
    ``fetch.reconcile_stopped``; the repository it was in stays due); a permanent failure is
    handled like the sync's own."""
    deadline = ports.clock.monotonic() + config.sync_budget_seconds
    tally = Tally()
    try:
        tally = reconcile.cycle(ports, client, PLANS[provider], tenant, connection, budget,
                                config.reconcile_days,
                                out_of_time=lambda: ports.clock.monotonic() >= deadline)
    except (RateLimited, BudgetExhausted, RetryableError) as e:
        log.warning("fetch.reconcile_stopped", extra={"fields": {
            "connection": connection, "reason": e.key}})
    run.stats.requests += tally.requests
    run.stats.deleted += tally.tombstoned


def _stopped(ports: Ports, tenant: str, connection: str, owner: str, error: BaseException,
             stats: dict, retry_seconds: float) -> bool:
    """Record why a run stopped early; True when ``error`` is to be raised on. A rejected
    token or a missing scope also turns the connection ``needs_reauth``: only a new token
    helps (:mod:`shared.health`)."""
    if isinstance(error, RateLimited | BudgetExhausted):
        _defer(ports, connection, error.retry_at)
        status.end(ports, connection, owner, "waiting", retry_at=error.retry_at,
                   reason=error.key, stats=stats)
        return False
    if isinstance(error, RetryableError):  # retried on our own schedule, from the checkpoints
        state = recovery.retry_later(ports, connection, owner, error.key, stats, retry_seconds)
        log.warning("fetch.transient_failure", extra={"fields": {
            "connection": connection, "reason": error.key, "state": state}})
        return False
    reason = error.key if isinstance(error, KeywayError) else "fetch.error"
    if isinstance(error, TokenRejected | InsufficientScope):
        health.mark(ports, tenant, connection, "needs_reauth", reason)
    status.end(ports, connection, owner, "failed", reason=reason, stats=stats)
    return True


def _return_blocks(budget: TokenBudget) -> None:
    """Return the run's unused grants; if the store refuses, their lease expires instead."""
    try:
        budget.close()
    except KeywayError as e:
        log.warning("budget.return_failed", extra={"fields": {"reason": e.key}})


def _lease() -> timedelta:
    return timedelta(seconds=bootstrap.config().sync_lease_seconds)


def _unusable_envelope(provider: str, ports: Ports, connection: str, key: str) -> None:
    """A redelivered job (its envelope already opened, or expired): resume its sync if it
    stopped without finishing; see the module docstring."""
    outcome = recovery.recover(ports, connection, f"fetch-{provider}", _lease())
    log.info("fetch.envelope_unusable", extra={"fields": {
        "connection": connection, "reason": key, "recovery": outcome}})


def _defer(ports: Ports, connection: str, retry_at) -> None:
    def write(tx) -> None:
        doc = tx.get("connections", connection)
        if doc is not None:
            tx.put("connections", connection, {**doc, "next_sync_at": isoformat(retry_at)})

    ports.business.transaction(write)



def handlers(provider: str) -> dict:
    return {"fetch.job": functools.partial(on_fetch_job, provider)}
