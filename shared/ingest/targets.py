"""Which connections an event belongs to.

* Repository-scoped events: the ``repositories`` records (business store) whose provider and
  ``external_id`` match the payload's repository (GitHub id, Bitbucket uuid) or project
  (GitLab), not deleted.
* Installation events (GitHub): the business ``connections`` documents carrying that
  ``installation_id`` (stored as a number or a string).

Either way the connection document must exist for the same tenant and provider. An event that
came through a per-connection hook (``/c/<connection-id>``) applies to that connection only.
One through the app-level hook applies to every matching connection except self-hosted ones
(``base_url`` set: GitHub Enterprise Server, self-managed GitLab), whose ids live in another
id space and whose hooks use their per-connection secret.
"""

from __future__ import annotations

from typing import Any

from shared.ingest.event import Event, Target
from shared.ports import Filter, Ports


def _allowed(ports: Ports, event: Event, tenant: Any, connection: Any,
             cache: dict[str, dict | None]) -> bool:
    if not isinstance(connection, str) or not isinstance(tenant, str):
        return False
    if event.connection is not None and connection != event.connection:
        return False
    if connection not in cache:
        cache[connection] = ports.business.get("connections", connection)
    doc = cache[connection]
    if doc is None or doc.get("tenant") != tenant or doc.get("provider") != event.provider:
        return False
    return event.connection is not None or not doc.get("base_url")


def for_repository(ports: Ports, event: Event, external_id: Any) -> list[Target]:
    """The targets of an event about repository (project) ``external_id``."""
    if isinstance(external_id, bool) or not isinstance(external_id, int | str):
        return []
    snaps = ports.business.query("repositories", [
        Filter("provider", "==", event.provider), Filter("external_id", "==", str(external_id)),
        Filter("deleted", "==", False)])
    cache: dict[str, dict | None] = {}
    return [Target(s.data["tenant"], s.data["connection"], s.id) for s in snaps
            if _allowed(ports, event, s.data.get("tenant"), s.data.get("connection"), cache)]


def for_installation(ports: Ports, event: Event, installation_id: Any) -> list[Target]:
    """The connections made through GitHub App installation ``installation_id``."""
    if isinstance(installation_id, bool) or not isinstance(installation_id, int | str):
        return []
    values: list[Any] = [str(installation_id)]
    if str(installation_id).isdigit():
        values.append(int(installation_id))
    snaps = ports.business.query("connections", [
        Filter("provider", "==", event.provider), Filter("installation_id", "in", values)])
    cache = {s.id: s.data for s in snaps}
    return [Target(s.data["tenant"], s.id) for s in snaps
            if _allowed(ports, event, s.data.get("tenant"), s.id, cache)]
