"""fetch-P's ``fetch.job`` handler: open the sealed token, sync, record the outcome.

Idempotent: everything it writes is an upsert keyed by (tenant, provider, external id) that
never lets older data win, and cursors advance only after their records are written. A
second, third or concurrent delivery of the same job finds the connection's sync lease held
(acknowledged, nothing done) or resumes from the checkpoints (re-fetching at most one page).
The envelope expires five minutes after the vault sealed it; an older job is rejected and
the next scheduled sync takes over.

Outcomes: finished → ``done``; time budget spent → a continuation ``sync.requested`` goes back
to the vault (which seals a fresh token) → ``continuing``; rate limit or budget spent → the
connection's ``next_sync_at`` moves to the reset time → ``waiting`` (no spinning); the
provider refused the token → ``failed`` (``provider.token_rejected``); the token lacks a scope
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

import functools

from shared import bootstrap, health, messages
from shared.clock import isoformat
from shared.errors import InvalidInput, NotFound, PolicyViolation
from shared.fetch import status
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient, connection_api_base, shared_session
from shared.fetch.errors import BudgetExhausted, InsufficientScope, RateLimited, TokenRejected
from shared.fetch.github.plan import PLAN as GITHUB
from shared.fetch.gitlab.plan import PLAN as GITLAB
from shared.fetch.jira.plan import PLAN as JIRA
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
    claims, token = open_pushed_token(ports, f"fetch-{provider}", body.get("envelope"), "fetch")
    if claims.connection != connection:
        raise PolicyViolation("envelope is for another connection", key="fetch.wrong_connection")
    record = ports.business.get("connections", connection)
    if record is None or record.get("tenant") != tenant or record.get("provider") != provider:
        raise NotFound("no such connection", key="fetch.unknown_connection")
    owner = status.begin(ports, tenant, connection)
    if owner is None:
        log.info("fetch.already_running", extra={"fields": {"connection": connection}})
        return
    _run(provider, ports, tenant, connection, record, token, owner,
         body.get("resume") == "checkpoint")


def _run(provider: str, ports: Ports, tenant: str, connection: str, record: dict, token: str,
         owner: str, continuation: bool) -> None:
    spec = registry.get(provider)
    api_base = connection_api_base(spec, record)
    budget = TokenBudget(ports.business, ports.clock, budget_key(provider, connection))
    client = ProviderClient(spec, api_base, token, shared_session(), ports.clock, budget,
                            purpose="fetch")
    config = bootstrap.config()
    hooks = register.registrar(ports, client, spec, PLANS[provider], tenant, record, connection,
                               config.public_url)
    run = SyncRun(ports, client, PLANS[provider], tenant, connection,
                  config.sync_budget_seconds, continuation,
                  on_repositories=hooks.ensure if hooks else None)
    try:
        result = run.run()
    except (RateLimited, BudgetExhausted) as e:
        _defer(ports, connection, e.retry_at)
        status.end(ports, connection, owner, "waiting", retry_at=e.retry_at, reason=e.key,
                   stats=vars(run.stats))
        return
    except (TokenRejected, InsufficientScope) as e:
        health.mark(ports, tenant, connection, "needs_reauth", e.key)  # a new token must come
        status.end(ports, connection, owner, "failed", reason=e.key, stats=vars(run.stats))
        raise
    except BaseException:
        status.end(ports, connection, owner, "failed", reason="fetch.error",
                   stats=vars(run.stats))
        raise
    if result.finished:
        status.end(ports, connection, owner, "done", stats=vars(run.stats))
        return
    messages.publish(ports.bus, f"fetch-{provider}", f"sync-requests-{provider}",
                     "sync.requested", {"tenant": tenant, "connection": connection,
                                        "scope": "all", "resume": "checkpoint",
                                        "requested_at": isoformat(ports.clock.now())},
                     ordering_key=connection)
    status.end(ports, connection, owner, "continuing", stats=vars(run.stats))


def _defer(ports: Ports, connection: str, retry_at) -> None:
    def write(tx) -> None:
        doc = tx.get("connections", connection)
        if doc is not None:
            tx.put("connections", connection, {**doc, "next_sync_at": isoformat(retry_at)})

    ports.business.transaction(write)



def handlers(provider: str) -> dict:
    return {"fetch.job": functools.partial(on_fetch_job, provider)}
