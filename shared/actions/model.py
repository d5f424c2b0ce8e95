"""The action document, what an action request must say, and the invisible marker.

``actions/<doc_id(tenant, action_id)>`` in the business store: the ``action_id`` is the
idempotency key, and its namespace is the tenant's. The same ``action_id`` in two tenants is
two independent actions; within a tenant it names one action, whoever of its users sent it
(a repeat by another user of the tenant is a 409: every member reading ``data:read`` sees the
tenant's actions anyway, so the conflict discloses nothing new). :func:`doc_id` is the one
function every reader and writer (api, ``vault-P``, ``act-P``, the ledger) keys by::

    {"tenant", "user", "provider", "connection", "kind": "comment",
     "target": {"repository": <repository record id>, "parent_kind": "pull_request"|"issue",
                "number": <int>},
     "fingerprint": <sha256 of connection, kind, target and body>,
     "status": "pending" | "done" | "failed", "reason": <stable key, when failed>,
     "created_at", "published_at", "finished_at",
     "attempt": {"started_at", "lease_until", "marker", "count"},   # act-P, before posting
     "last_error": <stable key of the last retryable failure>,
     "queued_until": <when a paced or rate-limited action is tried again>,
     "queued_action": <the job's action while queued>, "requeued_at",   # write pacing
     "provider_comment_id", "url", "comment": <comment record id>}   # when done

The comment body travels in the messages and lands in the normalized ``comments`` record once
posted; it is kept here only while the action is queued (``queued_action``, so the scheduler
can ask for it again: :mod:`shared.actions.ledger`), and dropped when it ends. Nothing in
the document is a secret.

The marker ``<!-- keyway-action:<action_id> -->`` is appended to every posted body (GitHub
and GitLab render HTML comments invisibly) so a redelivery can recognise the comment an
earlier, interrupted attempt already posted. Bitbucket escapes HTML in comments, so there the
marker is the Markdown link reference ``[//]: # (keyway-action:<action_id>)``, which renders as
nothing (``MARKERS``, chosen per provider by :mod:`shared.actions.targets`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidInput
from shared.records.model import PARENT_KINDS
from shared.records.model import _escape as _escape_part

COLLECTION = "actions"
KINDS = ("comment",)
FIELDS = ("connection", "kind", "target", "body", "action_id")  # of a request body
PENDING, DONE, FAILED = "pending", "done", "failed"
MARKER_RESERVE = 256  # characters kept free for the marker under the providers' 65536 limit
MAX_BODY_CHARS = 65536 - MARKER_RESERVE
_ACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
VIEW_KEYS = ("user", "provider", "connection", "kind", "target", "status", "reason",
             "created_at", "published_at", "finished_at", "provider_comment_id", "url",
             "comment", "last_error", "queued_until")


@dataclass(frozen=True)
class ActionRequest:
    """A validated ``POST /v1/actions`` body."""

    action_id: str
    connection: str
    kind: str
    target: dict[str, Any]
    body: str

    @property
    def fingerprint(self) -> str:
        """Same key, same request: what a repeated ``action_id`` must match to be a retry."""
        return fingerprint(self.connection, self.kind, self.target, self.body)


def doc_id(tenant: str, action_id: str) -> str:
    """The store id of ``tenant``'s action ``action_id``: both parts percent-encoded as record
    ids are (``:``, ``/`` and ``%`` included) and joined by ``:``, so no two (tenant, action id)
    pairs share a document."""
    if not isinstance(tenant, str) or not tenant or not isinstance(action_id, str) or not action_id:
        raise InvalidInput("an action is keyed by a non-empty tenant and action id")
    return f"{_escape_part(tenant)}:{_escape_part(action_id)}"


def is_action_id(value: Any) -> bool:
    """1-128 characters of ``A-Za-z0-9_-``, starting with a letter or digit."""
    return isinstance(value, str) and _ACTION_ID.match(value) is not None


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string")
    return value


def _target(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) != {"repository", "parent_kind", "number"}:
        raise InvalidInput("target must be {repository, parent_kind, number}")
    if not isinstance(raw["repository"], str) or not raw["repository"]:
        raise InvalidInput("target.repository must be a repository id")
    if raw["parent_kind"] not in PARENT_KINDS:
        raise InvalidInput("target.parent_kind must be pull_request or issue")
    number = raw["number"]
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number < 2**31:
        raise InvalidInput("target.number must be a positive integer")
    return {"repository": raw["repository"], "parent_kind": raw["parent_kind"],
            "number": number}


def _body(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("body must be a non-blank string")
    if len(raw) > MAX_BODY_CHARS:
        raise InvalidInput(f"body must be at most {MAX_BODY_CHARS} characters")
    return raw


def parse_request(payload: Any) -> ActionRequest:
    """Validate a request body; anything malformed raises ``InvalidInput`` (400)."""
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = set(payload) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
    if payload.get("kind") not in KINDS:
        raise InvalidInput("kind must be one of " + ", ".join(KINDS))
    action_id = payload.get("action_id")
    if action_id is None:
        action_id = uuid.uuid4().hex
    elif not is_action_id(action_id):
        raise InvalidInput("action_id must be 1-128 characters of A-Za-z0-9_- "
                           "starting with a letter or digit")
    return ActionRequest(action_id, _text(payload, "connection"), payload["kind"],
                         _target(payload.get("target")), _body(payload.get("body")))


def fingerprint(connection: Any, kind: Any, target: Any, body: Any) -> str:
    """sha256 of the canonical JSON of what an action does (the document keeps only this)."""
    canonical = json.dumps([connection, kind, target, body], sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


MARKERS = {"html": "<!-- keyway-action:{} -->", "markdown": "[//]: # (keyway-action:{})"}


def marker(action_id: str, style: str = "html") -> str:
    """The invisible marker of one action (``action_id`` cannot contain ``>`` or ``)``)."""
    return MARKERS[style].format(action_id)


def with_marker(body: str, action_id: str, style: str = "html") -> str:
    """The body as posted: the user's text, a blank line, the marker."""
    return f"{body}\n\n{marker(action_id, style)}"


def has_marker(text: Any, action_id: str) -> bool:
    """True when ``text`` ends with this action's marker, in either style (trailing whitespace
    ignored)."""
    return isinstance(text, str) and any(
        text.rstrip().endswith(marker(action_id, style)) for style in MARKERS)


def view(action_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of an action: never the tenant, the fingerprint or a token."""
    return {"id": action_id, **{key: doc.get(key) for key in VIEW_KEYS}}
