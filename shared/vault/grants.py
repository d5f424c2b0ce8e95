"""Whether revoking a token would cut another connection or identity.

GitHub revokes per grant (``DELETE /applications/{client_id}/grant``): every token the
OAuth app holds for that user goes at once — another tenant's connection of the same account,
or the same person's linked identity. So before a disconnect or an unlink revokes, the vault
looks for another live connection (any tenant) or identity of the same provider account on
the same host; if there is one, the token is deleted from the vault but the grant is left
(audited ``kept_shared_grant``). Providers that revoke a single token (RFC 7009) never share.
"""

from __future__ import annotations

from shared import ids
from shared.ports import Filter, Ports
from shared.providers import registry

GONE = ("disconnecting", "disconnected")


def shared_grant(ports: Ports, provider: str, connection: str) -> bool:
    """Whether the app connection ``connection`` shares its grant with anything live."""
    record = ports.business.get("connections", connection) or {}
    if record.get("installation_id"):
        return False
    return _shared(ports, provider, record, skip_connection=connection)


def identity_shares_grant(ports: Ports, provider: str, tenant: str, user: str) -> bool:
    """Whether the user's linked identity shares its grant with anything live."""
    identity_id = ids.identity_id(provider, tenant, user)
    record = ports.business.get("identities", identity_id) or {}
    return _shared(ports, provider, record, skip_identity=identity_id)


def _shared(ports: Ports, provider: str, record: dict, *, skip_connection: str | None = None,
            skip_identity: str | None = None) -> bool:
    spec = registry.get(provider)
    if spec.oauth.revoke is None or spec.oauth.revoke.style != "github_grant":
        return False
    account_id = (record.get("account") or {}).get("id")
    if account_id is None:
        return False
    where = [Filter("provider", "==", provider), Filter("account.id", "==", account_id)]
    base_url = record.get("base_url")
    connections = [s for s in ports.business.query("connections", where)
                   if s.id != skip_connection and s.data.get("status") not in GONE
                   and s.data.get("base_url") == base_url
                   and not s.data.get("installation_id")]
    identities = [s for s in ports.business.query("identities", where)
                  if s.id != skip_identity and s.data.get("base_url") == base_url
                  and s.data.get("status") != "unlinking"]
    return bool(connections or identities)
