"""Jira Cloud webhook events → records: a routing table of ``webhookEvent`` → normalizer.

Handled: ``jira:issue_created`` / ``jira:issue_updated`` (the issue and the labels it carries),
``jira:issue_deleted`` (a tombstone), ``comment_created`` / ``comment_updated`` and
``comment_deleted`` (a tombstone). Webhook objects have the REST v2 shapes, which differ from
v3 only in text fields (a comment body is a string, not ADF); :mod:`shared.records.jira` reads
both, so a webhook and a sync of one issue land on one record. Other events (worklogs, sprints,
projects, users) are acknowledged and ignored.

Targets (:func:`find_targets`): Jira ids are unique per site only, so an event is matched to a
site first — the origin of the payload's ``self`` URL against the connection's ``site.url``
(or, for an API-gateway URL ``…/ex/jira/<cloud id>/…``, the cloud id against ``site.id``) —
then to that site's project record (``<cloud id>:<project id>``). A delivery through
``/webhook-jira/c/<connection>`` applies to that connection only, and only if its site is the
payload's. A delivery of a dynamic webhook keyway registered (``webhook-jira`` verified it by
the OAuth app's JWT, ``verified_by: client_secret_jwt``) applies only to the connections whose
``webhook_registrations`` record holds one of the payload's ``matchedWebhookIds``: Jira sends
such a webhook only for issues its registering user may see, so it must not reach another
tenant's connection to the same site. Unknown sites and projects find no target:
``ingest.jira.unknown_account``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.ingest.event import Change, Event, Target, Tombstone, Upsert, deleted_at
from shared.ingest.routes import Route
from shared.ports import Filter, Ports
from shared.records import jira
from shared.records import model as m
from shared.records.model import Context, record_id
from shared.webhooks import hooks

GATEWAY_PREFIX = "/ex/jira/"


def _issue(event: Event) -> dict[str, Any]:
    return m.obj(event.payload.get("issue"), "issue")


def issue(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    return [Upsert(record) for record in jira.issue_with_labels(_issue(event), ctx)]


def issue_deleted(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw = _issue(event)
    key = m.numbered_key(ctx, jira.number_of(m.text(raw, "key")))
    fields = raw.get("fields") if isinstance(raw.get("fields"), dict) else {}
    return [Tombstone("issues", record_id(ctx.tenant, ctx.provider, "issues", key),
                      deleted_at(event, fields, "updated"))]


def comment(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw, parent = m.obj(event.payload.get("comment"), "comment"), _issue(event)
    key = m.text(parent, "key")
    return [Upsert(jira.comment(raw, ctx, "issue", jira.number_of(key), key))]


def comment_deleted(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw = m.obj(event.payload.get("comment"), "comment")
    rid = record_id(ctx.tenant, ctx.provider, "comments", jira.comment_key(ctx, m.ident(raw)))
    return [Tombstone("comments", rid, deleted_at(event, raw, "updated"))]


def event_name(event: Event) -> str:
    """Jira names the event in the body's ``webhookEvent``."""
    name = event.payload.get("webhookEvent")
    return name if isinstance(name, str) else ""


def site_of(payload: dict[str, Any]) -> tuple[str, str] | None:
    """``("url", origin)`` or ``("id", cloud id)`` of the site a payload comes from."""
    for part in ("issue", "comment"):
        raw = payload.get(part)
        parts = urlsplit(str(raw.get("self") or "")) if isinstance(raw, dict) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            continue
        if parts.path.startswith(GATEWAY_PREFIX):
            cloud = parts.path[len(GATEWAY_PREFIX):].split("/", 1)[0]
            return ("id", cloud) if cloud else None
        return "url", f"{parts.scheme}://{parts.netloc}".lower()
    return None


def project_of(payload: dict[str, Any]) -> str | None:
    raw = payload.get("issue")
    fields = raw.get("fields") if isinstance(raw, dict) else None
    project = fields.get("project") if isinstance(fields, dict) else None
    found = project.get("id") if isinstance(project, dict) else None
    return str(found) if isinstance(found, int | str) and str(found).isdigit() else None


def _connections(ports: Ports, event: Event, site: tuple[str, str]) -> list[tuple[str, dict]]:
    if event.connection is not None:
        doc = ports.business.get("connections", event.connection)
        return [(event.connection, doc)] if doc is not None else []
    field = "site.url" if site[0] == "url" else "site.id"
    return [(s.id, s.data) for s in ports.business.query("connections", [
        Filter("provider", "==", "jira"), Filter(field, "==", site[1])])]


def matched_ids(event: Event) -> set[str] | None:
    """The ids of the dynamic webhooks a JWT-verified delivery names (None: not one) — or a
    delivery recovered from Jira's failed-webhook list (``provider_api``), which went to the
    same app-level URL and is attributed the same way."""
    if event.verified_by not in ("client_secret_jwt", "provider_api"):
        return None
    ids = event.payload.get("matchedWebhookIds")
    return {str(i) for i in ids if isinstance(i, int | str) and not isinstance(i, bool)} \
        if isinstance(ids, list) else set()


def _registered(ports: Ports, connection: str, matched: set[str]) -> bool:
    """Whether ``connection``'s active site registration holds one of ``matched``."""
    record = ports.business.get(hooks.COLLECTION, hooks.doc_id(connection, hooks.SITE)) or {}
    ids = {*(record.get("hook_ids") or ()), *(record.get("retired_ids") or ())}
    return record.get("status") == "active" and bool(ids & matched)


def find_targets(ports: Ports, event: Event) -> list[Target]:
    """The project records of the payload's site and project (see the module docstring)."""
    site, project = site_of(event.payload), project_of(event.payload)
    if site is None or project is None:
        return []
    found: dict[str, Target] = {}
    matched = matched_ids(event)
    for connection, doc in _connections(ports, event, site):
        known = doc.get("site") if isinstance(doc.get("site"), dict) else {}
        mine = str(known.get("url" if site[0] == "url" else "id") or "").lower()
        tenant, cloud = doc.get("tenant"), known.get("id")
        if (doc.get("provider") != "jira" or mine != site[1].lower()
                or not isinstance(tenant, str) or not isinstance(cloud, str)
                or (matched is not None and not _registered(ports, connection, matched))):
            continue
        rid = record_id(tenant, "jira", "repositories", f"{cloud}:{project}")
        repo = ports.business.get("repositories", rid)
        if repo is not None and not repo.get("deleted") and rid not in found:
            found[rid] = Target(tenant, connection, rid, site=cloud)
    return list(found.values())


ROUTES: dict[str, Route] = {
    "jira:issue_created": Route("repository", issue),
    "jira:issue_updated": Route("repository", issue),
    "jira:issue_deleted": Route("repository", issue_deleted),
    "comment_created": Route("repository", comment),
    "comment_updated": Route("repository", comment),
    "comment_deleted": Route("repository", comment_deleted),
}
