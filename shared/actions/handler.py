"""act-P's ``action.job`` handler: post a user's comment with that user's personal token.

The job (from ``vault-P`` only) carries ``{tenant, action_id, connection, action: {kind,
target, body}, envelope}``; the envelope holds the requesting user's personal token, sealed
for ``act-P`` with purpose ``action``. The handler refuses a job whose action does not match
its action document (tenant, provider, connection, fingerprint of target and body) or whose
envelope names another user or connection than the action. The posted body ends with the
invisible marker ``<!-- keyway-action:<action_id> -->`` (on Bitbucket, which escapes HTML, the
Markdown link reference ``[//]: # (keyway-action:<action_id>)``; on Jira, whose ADF bodies
cannot hide it, the action id is a comment property instead: :mod:`shared.actions.targets`).

Idempotency — the dedupe key is ``(tenant, action_id)`` (the action document, keyed by
:func:`shared.actions.model.doc_id`):

* The document is read before the envelope is opened: an action already ``done`` or
  ``failed`` is acknowledged and nothing is posted. So the second, third, … delivery of a job
  that completed acknowledges without touching the provider.
* Before posting, the handler claims the attempt lease (:mod:`shared.actions.ledger`) and
  records ``attempt`` with the marker. A crash between the provider call and the
  acknowledgement leaves "attempt recorded, no result"; the next delivery that holds a usable
  envelope once the lease has lapsed *lists the thread's comments first* and, finding the
  marker (written by the same account), records that comment instead of posting again.
* Each envelope opens once (replay guard). A redelivery of a job whose envelope was already
  opened — after a crash, or after a retryable failure raised below, so it comes back after
  Pub/Sub's retry backoff — is acknowledged (``act.envelope_replayed``) and act-P asks its
  vault for a fresh envelope: it publishes ``action.requested`` for the same action (a row of
  the policy table); the vault checks, as for the API's request, that the action is pending
  and the requester's own before sealing, and the new job resumes by marker as above. At most
  :data:`MAX_RESEALS` such requests per action; past them the action fails with
  ``retries_exhausted``. (The API also republishes a stale pending action when the client
  retries its ``action_id``.)
* While another delivery holds a live lease, a job whose envelope is still unopened raises
  ``action.in_progress`` (retryable) so Pub/Sub brings it back later.

Too old: the envelope expires five minutes after the vault sealed it. An expired envelope never
posts late: with no attempt recorded the action fails with reason ``expired_envelope``; with an
attempt recorded (a comment may exist) act-P asks for a fresh envelope as above, so a
delivery can reconcile by marker.

Provider answers: a refusal saying the token lacks a scope (the personal scopes are too narrow
for the write: GitHub's ``public_repo``, GitLab's ``api``, Jira's ``write:jira-work``,
Bitbucket's ``issue:write``) → ``failed``/``insufficient_scope``; 401 → ``failed``/
``token_rejected``, 404/410 → ``target_not_found``, any other 403 without rate-limit signs →
``forbidden`` (the user may not write there, or a GitHub App lacks the permission), any other
4xx (422…) → ``provider_refused``, a request outside the allowlist → ``egress_refused``; the
connection or repository deleted meanwhile →
``unknown_connection`` / ``unknown_repository``; the requester's identity for another host
than the connection's → ``identity_mismatch``; any other permanent error → its stable key.
All permanent: recorded, acknowledged. 5xx, timeouts and malformed answers are retryable:
the lease is released, the key kept in ``last_error`` (the attempt stays, so the next try
looks for the marker first), raised. Rate limits and a spent budget queue the action (below).

Write limits (:mod:`shared.actions.pacing`): before its envelope is opened, a job takes a write
slot from the requester's pacing record; with none free the action is *queued* — nothing
posted, ``queued_until`` recorded (:func:`shared.actions.ledger.queue`), the job acknowledged
and its envelope left unopened to expire. A provider's rate-limit answer to the post (GitHub's
secondary limit: 403/429 with ``Retry-After``; anyone's 429), or the read budget spent, queues
it the same way at the provider's time (a rate-limit answer also pauses the pacing record).
The scheduler's tick asks the vault again for queued actions whose time has come
(:mod:`shared.scheduler.queued`); the new job resumes by marker if an attempt was recorded.

The third redelivery, concretely: of a job that finished → acknowledged at the first read,
no envelope opened, no provider call; of a job whose first delivery crashed → acknowledged
as ``act.envelope_replayed``, no provider call; of a job held up by a live lease → raised
again (``action.in_progress``) until the holder finishes, then acknowledged as finished.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import ids, messages
from shared.actions import ledger, outcome, pacing, provider, targets
from shared.actions.model import COLLECTION, PENDING, doc_id, fingerprint
from shared.clock import isoformat, parse_iso
from shared.crypto.seal import EnvelopeExpired, EnvelopeReplayed
from shared.errors import (
    InvalidInput,
    NotFound,
    PermanentError,
    PolicyViolation,
    RetryableError,
)
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient, connection_api_base, shared_session
from shared.fetch.errors import (
    BudgetExhausted,
    EgressRefused,
    InsufficientScope,
    NotFoundAtProvider,
    ProviderRefused,
    RateLimited,
    TokenRejected,
)
from shared.log import get_logger
from shared.ports import Ports
from shared.providers import registry
from shared.vault.receive import open_pushed_token

log = get_logger("keyway.act")
MAX_RESEALS = 5
PROVIDERS = targets.PROVIDERS  # the providers act-P has handlers for
REASONS: dict[type, str] = {TokenRejected: "token_rejected", NotFoundAtProvider:
                            "target_not_found", ProviderRefused: "provider_refused",
                            EgressRefused: "egress_refused",
                            InsufficientScope: "insufficient_scope"}


class ActionInProgress(RetryableError):
    key, title = "action.in_progress", "Another delivery is working on this action"


class StaleTarget(PermanentError):
    """The connection or repository of a pending action is gone (the key is the reason)."""

    status, key, title = 404, "unknown_target", "The action's connection or repository is gone"


@dataclass(frozen=True)
class Job:
    provider: str
    tenant: str
    action_id: str
    connection: str
    action: dict[str, Any]
    envelope: Any

    @property
    def fields(self) -> dict[str, str]:
        return {"provider": self.provider, "action": self.action_id}


def _job(provider: str, body: dict[str, Any]) -> Job:
    names = ("tenant", "action_id", "connection")
    if not all(isinstance(body.get(n), str) and body[n] for n in names) or not isinstance(
            body.get("action"), dict):
        raise InvalidInput("action job lacks tenant, action_id, connection or action",
                           key="act.bad_message")
    return Job(provider, body["tenant"], body["action_id"], body["connection"],
               body["action"], body.get("envelope"))


def _check_job(job: Job, doc: dict[str, Any]) -> None:
    """The job must describe exactly the action the API recorded."""
    action = job.action
    if doc.get("connection") != job.connection or doc.get("fingerprint") != fingerprint(
            job.connection, action.get("kind"), action.get("target"), action.get("body")):
        raise PolicyViolation("the job does not match its action", key="act.job_mismatch")


def on_action_job(provider_name: str, ports: Ports, inbound: messages.Inbound) -> None:
    """Handle one ``action.job`` (see the module docstring for the contract)."""
    job = _job(provider_name, inbound.body)
    doc = ports.business.get(COLLECTION, doc_id(job.tenant, job.action_id))
    if doc is None or doc.get("tenant") != job.tenant or doc.get("provider") != provider_name:
        raise NotFound("no such action", key="act.unknown_action")
    if doc.get("status") != PENDING:
        log.info("act.already_finished", extra={"fields": job.fields})
        return
    _check_job(job, doc)
    if ledger.leased(doc, ports.clock.now()):
        raise ActionInProgress(f"action {job.action_id} is being worked on")
    pacer = pacing.for_identity(ports, job.provider, job.tenant, doc["user"])
    wait = pacer.take()
    if wait is not None:  # no write slot: queued, the envelope left unopened
        _queue(ports, job, wait, "action.paced")
        return
    token = _open(ports, job, doc)
    if token is not None:
        _act(ports, job, doc, token, pacer)


def _queue(ports: Ports, job: Job, until: datetime, key: str) -> None:
    if ledger.queue(ports, job.action_id, job.tenant, until, key, job.action):
        log.info("act.queued", extra={"fields": {**job.fields, "until": isoformat(until),
                                                 "why": key}})


def _open(ports: Ports, job: Job, doc: dict[str, Any]) -> str | None:
    """The personal token, or None when this envelope cannot be used (already handled)."""
    try:
        claims, token = open_pushed_token(ports, f"act-{job.provider}", job.envelope, "action")
    except EnvelopeExpired:
        log.warning("act.envelope_expired", extra={"fields": job.fields})
        if doc.get("attempt"):
            _reseal(ports, job, doc, "envelope.expired")
        else:
            ledger.fail(ports, job.action_id, job.tenant, ports.clock.now(), "expired_envelope")
        return None
    except EnvelopeReplayed:
        log.warning("act.envelope_replayed", extra={"fields": job.fields})
        _reseal(ports, job, doc, "envelope.replayed")
        return None
    if claims.user != doc.get("user") or claims.connection != job.connection:
        raise PolicyViolation("the envelope is for another user or connection",
                              key="act.envelope_mismatch")
    return token


def _reseal(ports: Ports, job: Job, doc: dict[str, Any], error_key: str) -> None:
    """Ask the vault for a fresh envelope for this still-pending action (bounded)."""
    count = ledger.note_reseal(ports, job.action_id, job.tenant, error_key)
    if count is None:  # finished meanwhile
        return
    if count > MAX_RESEALS:
        _failed(ports, job, "retries_exhausted")
        return
    messages.publish(ports.bus, f"act-{job.provider}", f"action-requests-{job.provider}",
                     "action.requested", {
                         "tenant": job.tenant, "user": doc["user"], "action_id": job.action_id,
                         "connection": job.connection, "action": job.action,
                         "requested_at": isoformat(ports.clock.now()), "reason": "reseal"},
                     ordering_key=job.action_id)
    log.info("act.reseal_requested", extra={"fields": {**job.fields, "count": count}})


def _act(ports: Ports, job: Job, doc: dict[str, Any], token: str,
         pacer: pacing.WritePacer) -> None:
    begun = ledger.begin(ports, job.action_id, job.tenant, ports.clock.now())
    if begun.outcome not in ("first", "resume"):
        log.info("act.not_acting", extra={"fields": {**job.fields, "found": begun.outcome}})
        return
    try:
        thread, client = _prepare(ports, job, doc, token)
        raw = None
        if begun.outcome == "resume":  # an earlier attempt may have posted: look first
            raw = _find_earlier(ports, job, doc, thread, client)
        if raw is None:
            raw = provider.post(client, thread, job.action["body"], job.action_id)
    except PermanentError as e:  # nothing was posted by this attempt, and none will be
        _failed(ports, job, _reason(e))
        return
    except (RateLimited, BudgetExhausted) as e:  # not posted: try again at the given time
        if isinstance(e, RateLimited):
            pacer.pause(e.retry_at)
        _queue(ports, job, e.retry_at, e.key)
        return
    except RetryableError as e:
        ledger.note_error(ports, job.action_id, job.tenant, e.key, release=True)
        raise
    outcome.record(ports, job.provider, job.tenant, job.connection, job.action_id, thread,
                   raw)
    log.info("act.done", extra={"fields": job.fields})


def _reason(error: PermanentError) -> str:
    """The stable reason an action failed with (see the module docstring)."""
    if isinstance(error, InsufficientScope):
        return "insufficient_scope"
    if isinstance(error, ProviderRefused) and error.provider_status == 403:
        return "forbidden"
    return REASONS.get(type(error), error.key)


def _failed(ports: Ports, job: Job, reason: str) -> None:
    ledger.fail(ports, job.action_id, job.tenant, ports.clock.now(), reason)
    log.warning("act.failed", extra={"fields": {**job.fields, "reason": reason}})


def _prepare(ports: Ports, job: Job, doc: dict[str, Any],
             token: str) -> tuple[provider.Thread, ProviderClient]:
    """The thread to comment on and a client holding the personal token."""
    connection = ports.business.get("connections", job.connection)
    if connection is None or connection.get("tenant") != job.tenant:
        raise StaleTarget("the connection is gone", key="unknown_connection")
    target = doc["target"]
    repository = targets.repository_of(ports, job.tenant, job.connection, connection,
                                       target["repository"])
    if repository is None:
        raise StaleTarget("the repository is gone", key="unknown_repository")
    if targets.identity_for(ports, job.tenant, doc["user"], connection) is None:
        raise StaleTarget("the user's identity is not for this connection's host",
                          key="identity_mismatch")
    spec = registry.get(job.provider)
    api_base = connection_api_base(spec, connection)
    budget = TokenBudget(ports.business, ports.clock,
                         budget_key(job.provider, f"{job.tenant}:{doc['user']}", "personal"))
    client = ProviderClient(spec, api_base, token, shared_session(), ports.clock, budget,
                            purpose="act")
    thread = provider.Thread(job.provider, repository, target["parent_kind"], target["number"])
    return thread, client


def _find_earlier(ports: Ports, job: Job, doc: dict[str, Any], thread: provider.Thread,
                  client: ProviderClient) -> dict[str, Any] | None:
    """The comment an interrupted attempt posted, found by its marker (and its author)."""
    identity = ports.business.get("identities",
                                  ids.identity_id(job.provider, job.tenant, doc["user"])) or {}
    account = identity.get("account") or {}
    author = str(account["id"]) if account.get("id") is not None else None
    attempt = doc.get("attempt") or {}
    started = parse_iso(attempt.get("first_started_at") or attempt["started_at"])
    found = provider.find(client, thread, job.action_id, author, started)
    log.info("act.reconciled", extra={"fields": {**job.fields, "found": found is not None}})
    return found


def handlers(provider_name: str) -> dict:
    return {"action.job": functools.partial(on_action_job, provider_name)}
