"""The normalized common model: kinds, the context of a normalization, record ids, field lists.

Every provider module (:mod:`shared.records.github`, :mod:`shared.records.gitlab`,
:mod:`shared.records.bitbucket`, :mod:`shared.records.jira`) turns a raw provider payload into
a record of one of :data:`KINDS` through :func:`make`, which refuses any field that is not in
:data:`FIELDS` — an allowlist, so a provider field nobody chose (a diff hunk, a runners token,
an e-mail address) can never reach the store. ``docs/DATA_MODEL.md`` is the human description
of the same lists and says where each field comes from.

Record ids are ``<tenant>:<provider>:<kind prefix>:<key>`` with every part percent-encoded
(``:``, ``/``, ``%`` and a leading ``_`` included), so ids never contain ``/`` and parts can
never run into each other. The key is the provider's stable id, except for pull requests and
issues, which are keyed by ``<repository external id>#<number>`` because that is how every
child payload (comment, review) refers to them; :func:`numbered_key` builds it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from shared import ids
from shared.clock import isoformat
from shared.errors import InvalidInput

KINDS = ("repositories", "pull_requests", "issues", "comments", "reviews", "labels", "users")
PREFIXES = {
    "repositories": "repo", "pull_requests": "pr", "issues": "issue", "comments": "comment",
    "reviews": "review", "labels": "label", "users": "user",
}
_KIND_OF_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
REPO_SCOPED = frozenset({"pull_requests", "issues", "comments", "reviews", "labels"})
COMMON = ("id", "kind", "tenant", "provider", "connection", "external_id", "url",
          "created_at", "updated_at", "deleted")
FIELDS: dict[str, tuple[str, ...]] = {
    "repositories": (*COMMON, "name", "full_name", "private", "archived", "default_branch",
                     "owner", "has_issues", "node_id"),
    "pull_requests": (*COMMON, "repository", "number", "title", "state", "draft", "author",
                      "labels", "assignees", "closed_at", "merged_at", "source_branch",
                      "target_branch", "head_sha", "merge_commit_sha"),
    "issues": (*COMMON, "repository", "number", "title", "state", "author", "labels",
               "assignees", "closed_at"),
    "comments": (*COMMON, "repository", "parent_kind", "parent", "author", "body",
                 "body_truncated", "review_comment", "path", "line", "commit_sha"),
    "reviews": (*COMMON, "repository", "pull_request", "author", "state", "submitted_at"),
    "labels": (*COMMON, "repository", "name", "color", "description"),
    "users": (*COMMON, "login", "name", "avatar_url"),
}
PARENT_KINDS = {"pull_request": "pull_requests", "issue": "issues"}
BODY_CAP = 64 * 1024  # bytes of UTF-8
EPOCH = "1970-01-01T00:00:00.000000Z"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass(frozen=True)
class Context:
    """Who a payload belongs to: ``repository`` is the normalized repository's record id.

    ``observed_at`` (fixed-width ISO, :func:`shared.clock.isoformat`) is when the payload was
    received; it is the ``updated_at`` of records whose provider gives no timestamp (labels on
    both providers, GitLab users) and normalizing such a record without it is refused.

    ``site`` is the id space a provider's ids belong to when they are unique only per site
    (Jira Cloud: the connection's cloud id, because project ids such as ``10000`` repeat on
    every site); ``None`` where ids are global (GitHub, GitLab).
    """

    tenant: str
    provider: str
    connection: str
    repository: str | None = None
    observed_at: str | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        for name in ("tenant", "provider", "connection"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInput(f"context: {name} must be a non-empty string")
        if self.observed_at is not None and not is_timestamp(self.observed_at):
            raise InvalidInput("context: observed_at must be a fixed-width UTC ISO timestamp")


# ---- ids -------------------------------------------------------------------------------------
_escape = ids.escape


def record_id(tenant: str, provider: str, kind: str, external_id: str) -> str:
    """The deterministic, store-safe id of one record (no ``/``; at most 1500 bytes)."""
    if kind not in PREFIXES:
        raise InvalidInput(f"unknown kind: {kind!r}")
    parts = {"tenant": tenant, "provider": provider, "external_id": external_id}
    for name, part in parts.items():
        if not isinstance(part, str) or not part:
            raise InvalidInput(f"record id: {name} must be a non-empty string")
    rid = ":".join(_escape(p) for p in (tenant, provider, PREFIXES[kind], external_id))
    if len(rid.encode("utf-8", "surrogatepass")) > 1500:
        raise InvalidInput("record id: longer than 1500 bytes")
    return rid


def parse_record_id(rid: str) -> tuple[str, str, str, str]:
    """``(tenant, provider, kind, key)`` of an id made by :func:`record_id`."""
    return _parse_record_id(rid) if isinstance(rid, str) else _parse_record_id("")


@functools.lru_cache(maxsize=4096)  # pure; a page's parents share their repository's id
def _parse_record_id(rid: str) -> tuple[str, str, str, str]:
    parts = rid.split(":")
    if len(parts) != 4 or parts[2] not in _KIND_OF_PREFIX or not all(parts):
        raise InvalidInput("not a record id")
    return unquote(parts[0]), unquote(parts[1]), _KIND_OF_PREFIX[parts[2]], unquote(parts[3])


def repository_of(ctx: Context) -> str:
    """``ctx.repository``, checked to be a repository id of the same tenant and provider."""
    if ctx.repository is None:
        raise InvalidInput("context: repository is required for repository-scoped records")
    tenant, provider, kind, _ = parse_record_id(ctx.repository)
    if (tenant, provider, kind) != (ctx.tenant, ctx.provider, "repositories"):
        raise InvalidInput("context: repository is not a repository of this tenant and provider")
    return ctx.repository


def numbered_key(ctx: Context, number: int) -> str:
    """The key of pull request or issue ``number`` in ``ctx.repository``."""
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise InvalidInput("number must be a non-negative integer")
    return f"{parse_record_id(repository_of(ctx))[3]}#{number}"


def parent_id(ctx: Context, parent_kind: str, number: int) -> str:
    """Record id of the pull request or issue a comment or review belongs to."""
    if parent_kind not in PARENT_KINDS:
        raise InvalidInput(f"parent_kind must be one of {sorted(PARENT_KINDS)}")
    kind = PARENT_KINDS[parent_kind]
    return record_id(ctx.tenant, ctx.provider, kind, numbered_key(ctx, number))


def check_repository(ctx: Context, external: Any, field: str) -> None:
    """Refuse a payload whose own repository id (when it has one) is not ``ctx.repository``'s."""
    if external is not None and str(external) != parse_record_id(repository_of(ctx))[3]:
        raise InvalidInput(f"{field}: payload belongs to another repository than the context")


# ---- reading raw payloads ------------------------------------------------------------------
def obj(raw: Any, field: str = "payload") -> dict[str, Any]:
    """``raw`` if it is a JSON object, else ``InvalidInput`` naming ``field``."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{field}: expected a JSON object")
    return raw


def require(raw: dict[str, Any], field: str) -> Any:
    """``raw[field]``; a missing or null value → ``InvalidInput`` naming the field."""
    value = obj(raw).get(field)
    if value is None:
        raise InvalidInput(f"missing required field: {field}")
    return value


def text(raw: dict[str, Any], field: str) -> str:
    """A required string field."""
    value = require(raw, field)
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string")
    return value


def integer(raw: dict[str, Any], field: str) -> int:
    """A required integer field (``bool`` is not an integer here)."""
    value = require(raw, field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{field}: expected an integer")
    return value


def ident(raw: dict[str, Any], field: str = "id") -> str:
    """A provider id (number or string) as a non-empty string."""
    value = require(raw, field)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise InvalidInput(f"{field}: expected an id")
    return str(value)


def optional_text(raw: dict[str, Any], field: str) -> str | None:
    """A string field, or ``None`` when absent or not a string."""
    value = raw.get(field)
    return value if isinstance(value, str) else None


def flag(raw: dict[str, Any], field: str) -> bool | None:
    """A boolean field, or ``None`` when absent or not a boolean (the provider did not say)."""
    value = raw.get(field)
    return value if isinstance(value, bool) else None


def timestamp(raw: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    """A provider timestamp (``…Z``, ``….840Z``, ``…+02:00``) as fixed-width UTC ISO."""
    value = raw.get(field)
    if value is None and not required:
        return None
    return convert(require(raw, field), field)


def convert(value: Any, field: str, *, plus_microseconds: int = 0) -> str:
    """A provider timestamp string as fixed-width UTC ISO (optionally nudged later)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, TypeError, ValueError) as e:
        raise InvalidInput(f"{field}: not an ISO-8601 timestamp") from e
    if moment.tzinfo is None:
        raise InvalidInput(f"{field}: timestamp has no time zone")
    return isoformat(moment + timedelta(microseconds=plus_microseconds))


def updated(ctx: Context, provider_value: str | None) -> str:
    """The provider's own update time, else ``ctx.observed_at``; neither → ``InvalidInput``."""
    if provider_value is not None:
        return provider_value
    if ctx.observed_at is None:
        raise InvalidInput("missing required field: updated_at (pass Context.observed_at)")
    return ctx.observed_at


def is_timestamp(value: Any) -> bool:
    """True for a fixed-width UTC ISO string as :func:`shared.clock.isoformat` writes it."""
    return isinstance(value, str) and bool(TIMESTAMP.match(value))


def person(raw: Any, login_field: str) -> dict[str, str] | None:
    """``{"login", "external_id"}`` of an embedded user object; ``None`` when there is none."""
    if raw is None:
        return None
    return {"login": text(obj(raw, "user"), login_field), "external_id": ident(raw)}


def people(raw: Any, login_field: str) -> list[dict[str, str]]:
    """:func:`person` of every user in a list (assignees); nulls are skipped."""
    return [p for p in (person(item, login_field) for item in raw or ()) if p is not None]


def cap(body: Any) -> tuple[str, bool]:
    """A comment body cut to :data:`BODY_CAP` bytes of UTF-8 (whole characters only)."""
    if body is None:
        return "", False
    if not isinstance(body, str):
        raise InvalidInput("body: expected a string")
    encoded = body.encode("utf-8", "surrogatepass")
    if len(encoded) <= BODY_CAP:
        return body, False
    return encoded[:BODY_CAP].decode("utf-8", "ignore"), True


def color(value: Any) -> str | None:
    """``f29513`` / ``#D9534F`` → ``#f29513`` / ``#d9534f``; other values kept as given."""
    if not isinstance(value, str):
        return None
    bare = value.removeprefix("#")
    return f"#{bare.lower()}" if re.fullmatch(r"[0-9A-Fa-f]{6}", bare) else value


# ---- building records --------------------------------------------------------------------
def make(kind: str, ctx: Context, *, external_id: str, key: str | None = None,
         **fields: Any) -> dict[str, Any]:
    """A record of ``kind`` with exactly the fields of :data:`FIELDS` (anything else raises)."""
    record: dict[str, Any] = {
        "id": record_id(ctx.tenant, ctx.provider, kind, key or external_id), "kind": kind,
        "tenant": ctx.tenant, "provider": ctx.provider, "connection": ctx.connection,
        "external_id": external_id, "deleted": False, **fields,
    }
    if kind in REPO_SCOPED:
        record["repository"] = repository_of(ctx)
    if set(record) != set(FIELDS[kind]):  # a normalizer drifted from the documented model
        raise TypeError(f"{kind}: fields {sorted(set(record) ^ set(FIELDS[kind]))} drifted")
    return {name: record[name] for name in FIELDS[kind]}
