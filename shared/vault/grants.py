"""Whether revoking a connection's token would cut another connection or identity.

GitHub revokes per grant (``DELETE /applications/{client_id}/grant``): every token the
OAuth app holds for that user goes at once — another tenant's connection of the same account,
or the same person's linked identity. So before a disconnect revokes, the vault looks for
another live connection (any tenant) or identity of the same provider account on the same
host; if there is one, the token is deleted from the vault but the grant is left (audited
``kept_shared_grant``). Providers that revoke a single token (RFC 7009) never share.
"""

from __future__ import annotations

from shared.ports import Filter, Ports
from shared.providers import registry

GONE = ("disconnecting", "disconnected")


def shared_grant(ports: Ports, provider: str, connection: str) -> bool:
    spec = registry.get(provider)
    if spec.oauth.revoke is None or spec.oauth.revoke.style != "github_grant":
        return False
    record = ports.business.get("connections", connection) or {}
    account_id = (record.get("account") or {}).get("id")
    if account_id is None or record.get("installation_id"):
        return False
    where = [Filter("provider", "==", provider), Filter("account.id", "==", account_id)]
    others = [s for s in ports.business.query("connections", where)
              if s.id != connection and s.data.get("status") not in GONE
              and s.data.get("base_url") == record.get("base_url")
              and not s.data.get("installation_id")]
    identities = [s for s in ports.business.query("identities", where)
                  if s.data.get("base_url") == record.get("base_url")]
    return bool(others or identities)
