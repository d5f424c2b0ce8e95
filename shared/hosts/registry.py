"""The host registry: one record per (tenant, provider, base URL), each with its own OAuth
client.

A self-hosted GitHub Enterprise Server or GitLab never knows the cloud app's client, and a
token endpoint a user names must never receive keyway's global client secret. So a host is
registered once — by a tenant admin (``POST /api/v1/hosts``) or an operator
(``keyway hosts add``) — with the id and secret of the OAuth application registered on that
host, and only a registered host can be named by a connection or an identity.

Records live in the business store, collection ``hosts``, under :func:`host_id` (a hash of
tenant, provider and normalized base URL, so the same host registered twice is one record)::

    {tenant, provider, base_url, client_id, secret_name, status, created_by, created_at}

The client secret is never in the record: it is stored as its own secret
(:func:`secret_name`, ``host-<provider>-<hash>-client-secret``) through the secrets port, one
secret per host, which only that provider's token component (``oauth-P``/``vault-P``) may read.
Registration reserves the record (``status: pending``) in a transaction before it adds the
secret version, so two concurrent registrations of one host cannot both write the secret;
only an ``active`` record is ever used. A reservation left ``pending`` for longer than
:data:`PENDING_TTL` (its registration died between the two steps) may be taken over.

The base URL passes the SSRF guard (:func:`shared.providers.ssrf.check_base_url`: https, no
private/loopback/link-local address, loopback and http-to-loopback only in local mode) at
registration; every request to it passes it again (:mod:`shared.http_egress`).

Errors: :class:`HostNotRegistered` (400 ``oauth.host_not_registered``), :class:`HostExists`
(409 ``hosts.already_registered``), :class:`HostInUse` (409 ``hosts.in_use``, a connection uses it),
:class:`HostNotFound` (404 ``hosts.not_found``, also for another tenant's host),
:class:`InvalidClient` (400 ``hosts.invalid_client``). None carries the secret.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ports import Filter, Ports
from shared.providers import registry, ssrf

COLLECTION = "hosts"
SECRET_PREFIX = "host-"  # noqa: S105 - a name prefix, not a value
PENDING_TTL = timedelta(minutes=5)
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_CLIENT_SECRET = re.compile(r"[\x21-\x7e]{8,1024}")


class HostNotRegistered(InvalidInput):
    key, title = "oauth.host_not_registered", "This host has no registered OAuth client"


class HostExists(Conflict):
    key, title = "hosts.already_registered", "This host is already registered"


class HostInUse(Conflict):
    key, title = "hosts.in_use", "Connections or identities still use this host"


class HostNotFound(NotFound):
    key, title = "hosts.not_found", "No such host"


class InvalidClient(InvalidInput):
    key, title = "hosts.invalid_client", "The OAuth client id or secret is malformed"


@dataclass(frozen=True)
class Host:
    id: str
    tenant: str
    provider: str
    base_url: str
    client_id: str
    secret_name: str
    created_by: str
    created_at: str

    def view(self) -> dict[str, Any]:
        """What the API and the CLI show: everything but the secret's name."""
        return {"id": self.id, "provider": self.provider, "base_url": self.base_url,
                "client_id": self.client_id, "created_by": self.created_by,
                "created_at": self.created_at}


def _digest(tenant: str, provider: str, base_url: str) -> str:
    return hashlib.sha256(f"{tenant}\n{provider}\n{base_url}".encode()).hexdigest()[:24]


def host_id(tenant: str, provider: str, base_url: str) -> str:
    """The record id of a normalized base URL for one tenant and provider."""
    return "h-" + _digest(tenant, provider, base_url)


def secret_name(provider: str, id_: str) -> str:
    """``host-<provider>-<hash>-client-secret``: the per-provider prefix is what IAM grants
    that provider's token component (and no other) read access to."""
    return f"{SECRET_PREFIX}{provider}-{id_.removeprefix('h-')}-client-secret"


def normalize(provider: str, base_url: object, *, local_mode: bool) -> str:
    """The SSRF-checked, normalized base URL of a self-hosted ``provider`` host."""
    spec = registry.get(provider)
    if not spec.self_hosted:
        raise InvalidInput(f"{provider} has no self-hosted variant", key="oauth.no_base_url")
    if not isinstance(base_url, str):
        raise InvalidInput("base_url must be a string")
    return ssrf.check_base_url(base_url, local_mode=local_mode)


def _from_doc(doc_id: str, doc: dict[str, Any]) -> Host:
    return Host(doc_id, doc["tenant"], doc["provider"], doc["base_url"], doc["client_id"],
                doc["secret_name"], doc.get("created_by") or "", doc.get("created_at") or "")


def _check_client(client_id: object, client_secret: object) -> None:
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise InvalidClient("client_id must be 1-255 printable characters without spaces")
    if not isinstance(client_secret, str) or not _CLIENT_SECRET.fullmatch(client_secret):
        raise InvalidClient("client_secret must be 8-1024 printable characters without spaces")


def _taken(doc: dict[str, Any] | None, now: datetime) -> bool:
    """Whether a record holds the id: active, or a reservation that may still complete."""
    if doc is None:
        return False
    if doc.get("status") != "pending":
        return True
    return parse_iso(doc["created_at"]) + PENDING_TTL > now


def register(ports: Ports, *, tenant: str, provider: str, base_url: object, client_id: object,
             client_secret: object, created_by: str, local_mode: bool) -> Host:
    """Register a host with its OAuth client; see the module docstring."""
    normalized = normalize(provider, base_url, local_mode=local_mode)
    _check_client(client_id, client_secret)
    id_, now = host_id(tenant, provider, normalized), ports.clock.now()
    doc = {"tenant": tenant, "provider": provider, "base_url": normalized,
           "client_id": client_id, "secret_name": secret_name(provider, id_),
           "status": "pending", "created_by": created_by,
           "created_at": isoformat(now)}

    def reserve(tx) -> None:
        if _taken(tx.get(COLLECTION, id_), now):
            raise HostExists("this host is already registered; remove it first to replace it")
        tx.put(COLLECTION, id_, doc)

    ports.business.transaction(reserve)
    try:
        ports.secrets.add_version(doc["secret_name"], str(client_secret).encode())
    except BaseException:
        ports.business.delete(COLLECTION, id_)
        raise
    ports.business.put(COLLECTION, id_, {**doc, "status": "active"})
    return _from_doc(id_, doc)


def get(ports: Ports, id_: str) -> Host | None:
    """The active host ``id_``, or None."""
    doc = ports.business.get(COLLECTION, id_) if isinstance(id_, str) else None
    return _from_doc(id_, doc) if doc and doc.get("status") == "active" else None


def lookup(ports: Ports, tenant: str, provider: str, base_url: str) -> Host:
    """The active host a tenant registered for this provider and normalized base URL;
    :class:`HostNotRegistered` otherwise (another tenant's registration does not count)."""
    host = get(ports, host_id(tenant, provider, base_url))
    if host is None or (host.tenant, host.provider, host.base_url) != (tenant, provider,
                                                                       base_url):
        raise HostNotRegistered(f"register this {provider} host first (POST /api/v1/hosts or "
                                "keyway hosts add); only registered hosts can be connected")
    return host


def list_hosts(ports: Ports, tenant: str) -> list[Host]:
    snaps = ports.business.query(COLLECTION, [Filter("tenant", "==", tenant)])
    return sorted((_from_doc(s.id, s.data) for s in snaps if s.data.get("status") == "active"),
                  key=lambda h: (h.provider, h.base_url))


def _connections(ports: Ports, host: Host) -> int:
    """Connections on ``host`` that are not disconnected."""
    where = [Filter("tenant", "==", host.tenant), Filter("host", "==", host.id)]
    return sum(1 for s in ports.business.query("connections", where)
               if s.data.get("status") != "disconnected")


def remove(ports: Ports, tenant: str, id_: str) -> Host:
    """Delete a tenant's host and its secret; refused while a connection uses it. Identities
    linked on the host stay, but their tokens can no longer be refreshed or revoked with a
    client (they need relinking once the host is registered again)."""
    host = get(ports, id_)
    if host is None or host.tenant != tenant:
        raise HostNotFound("no such host")
    if _connections(ports, host):
        raise HostInUse("disconnect the connections on this host first")
    ports.business.delete(COLLECTION, id_)
    try:
        ports.secrets.delete(host.secret_name)
    except NotFound:
        pass
    return host
