"""The API side of an action: check it, record it, ask the provider's vault to release.

``request_action`` is what ``POST /v1/actions`` runs:

1. validate the body (400) and require the scope ``actions:write`` (403);
2. an existing action of the caller's tenant with that ``action_id`` (the namespace is the
   tenant's: :func:`shared.actions.model.doc_id`; another tenant's equal id is another action
   and is never seen here): the same user of the same tenant sending the same
   request (fingerprint) gets it back (``created`` False) — a retry, nothing published unless
   the action is still pending and its last publish is older than :data:`REPUBLISH_AFTER`
   (or never happened): then ``action.requested`` goes out again, the vault seals a fresh
   envelope and ``act-P`` finishes by marker without posting twice. Anyone else, or the same
   key with a different request → 409;
3. the connection and the repository record must be the caller tenant's, and the repository
   that connection's (404 otherwise, like a missing one), and of a provider that has actions (400);
4. the connection must be able to act: one ``disconnecting``, ``disconnected`` or
   ``needs_reauth`` is a 409 :class:`ConnectionUnavailable`;
5. the user must have linked an identity with that provider, on the connection's own host
   (``identities/<provider>:<tenant>:<user>`` with the connection's ``base_url``: a personal
   token from github.com never goes to an Enterprise Server connection, or the reverse), else
   :class:`IdentityRequired` (409, with where to link); an identity that needs linking again
   is :class:`IdentityNeedsReauth` (409, with where to link);
6. create the document (``pending``) and publish ``action.requested`` to
   ``action-requests-<provider>`` as ``api``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import messages
from shared.actions import ledger, targets
from shared.actions.model import COLLECTION, PENDING, ActionRequest, doc_id, parse_request, view
from shared.auth.principal import Principal
from shared.clock import isoformat
from shared.errors import Conflict, InvalidInput, NotFound
from shared.log import get_logger
from shared.ports import Ports

REPUBLISH_AFTER = timedelta(minutes=10)  # > envelope lifetime + attempt lease
log = get_logger("keyway.api.actions")


class IdentityRequired(Conflict):
    """The caller has no linked identity with the provider (the API adds a link URL)."""

    key, title = "action.identity_required", "Link your identity with this provider first"

    def __init__(self, provider: str) -> None:
        super().__init__(f"link a {provider} identity before acting on {provider}")
        self.provider = provider


class IdentityNeedsReauth(IdentityRequired):
    """The caller's identity with the provider needs linking again (the provider refused its
    token, or it can no longer be decrypted); the API adds the link URL."""

    key, title = "action.identity_needs_reauth", "Link your identity with this provider again"

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.detail = f"your {provider} identity must be linked again before acting on {provider}"


class ConnectionUnavailable(Conflict):
    key, title = "action.connection_unavailable", "The connection cannot act now"


UNAVAILABLE = ("disconnecting", "disconnected", "needs_reauth")


def unavailable_reason(connection: dict[str, Any]) -> str | None:
    """Why ``connection`` cannot act (its status), or ``None`` when it can."""
    status = connection.get("status")
    return status if status in UNAVAILABLE else None


class ActionIdTaken(Conflict):
    key, title = "action.id_conflict", "This action id is already used by another request"


def request_action(ports: Ports, principal: Principal, payload: Any) -> tuple[dict, bool]:
    """``(the action as the API shows it, created?)`` — see the module docstring."""
    principal.require_scope("actions:write")
    request = parse_request(payload)
    existing = ports.business.get(COLLECTION, doc_id(principal.tenant, request.action_id))
    if existing is not None:
        return _again(ports, principal, request, existing), False
    provider = _check_target(ports, principal, request)
    doc, created = ledger.create(ports, principal.tenant, request.action_id, _document(
        ports, principal, request, provider))
    if not created:  # a concurrent request with the same key won the race
        return _again(ports, principal, request, doc), False
    return _publish(ports, request.action_id, doc, request), True


def _again(ports: Ports, principal: Principal, request: ActionRequest,
           doc: dict[str, Any]) -> dict[str, Any]:
    if ((doc.get("tenant"), doc.get("user")) != (principal.tenant, principal.user)
            or doc.get("fingerprint") != request.fingerprint):
        raise ActionIdTaken("use a new action_id for a different request")
    published = doc.get("published_at")
    stale = isoformat(ports.clock.now() - REPUBLISH_AFTER)
    if doc.get("status") == PENDING and (not published or published < stale):
        log.info("action.republished", extra={"fields": {"action": request.action_id}})
        return _publish(ports, request.action_id, doc, request)
    return view(request.action_id, doc)


def _check_target(ports: Ports, principal: Principal, request: ActionRequest) -> str:
    """The provider of the caller's connection; 404 for anything not the caller's."""
    connection = ports.business.get("connections", request.connection)
    if connection is None or connection.get("tenant") != principal.tenant:
        raise NotFound("no such connection")
    provider = connection.get("provider")
    if (why := unavailable_reason(connection)) is not None:
        raise ConnectionUnavailable(f"the connection is {why}: nothing can be posted through it"
                                    + (" until it is authorized again" if why == "needs_reauth"
                                       else ""))
    if targets.repository_of(ports, principal.tenant, request.connection, connection,
                             request.target["repository"]) is None:
        raise NotFound("no such repository")
    if not isinstance(provider, str) or not targets.supports(provider):
        raise InvalidInput("comments can be posted on " + " and ".join(targets.PROVIDERS)
                           + " connections only")
    if not targets.supports(provider, request.target["parent_kind"]):
        raise InvalidInput(f"{provider} has no {request.target['parent_kind']} to comment on")
    identity = targets.identity_for(ports, principal.tenant, principal.user, connection)
    if identity is None:
        raise IdentityRequired(provider)
    if identity.get("status") == "needs_reauth":
        raise IdentityNeedsReauth(provider)
    return provider


def _document(ports: Ports, principal: Principal, request: ActionRequest,
              provider: str) -> dict[str, Any]:
    return {"tenant": principal.tenant, "user": principal.user, "provider": provider,
            "connection": request.connection, "kind": request.kind, "target": request.target,
            "fingerprint": request.fingerprint, "status": PENDING,
            "created_at": isoformat(ports.clock.now()), "published_at": None}


def _publish(ports: Ports, action_id: str, doc: dict[str, Any],
             request: ActionRequest) -> dict[str, Any]:
    """Publish ``action.requested`` and note when (a failed publish raises: retry the POST)."""
    provider, now = doc["provider"], ports.clock.now()
    messages.publish(ports.bus, "api", f"action-requests-{provider}", "action.requested", {
        "tenant": doc["tenant"], "user": doc["user"], "action_id": action_id,
        "connection": doc["connection"], "requested_at": isoformat(now),
        "action": {"kind": request.kind, "target": request.target, "body": request.body}},
        ordering_key=action_id)
    ledger.mark_published(ports, action_id, doc["tenant"], now)
    return view(action_id, {**doc, "published_at": isoformat(now)})
