"""One provider account, one connection per tenant; re-authorization keeps its account.

* **Connecting an account already connected** in the tenant (same provider, same host, same
  account — or the same GitHub App installation) is refused: :class:`DuplicateAccount`
  (``connection.duplicate_account``), and the browser lands on the result page with the
  existing connection's id. Two connections of one account would fetch the same data twice,
  and the provider may tie both tokens to one grant, so disconnecting one would cut the other.
* **Re-authorizing** (``POST /v1/connections/{id}/reauthorize``) replaces the token of the same
  connection (same id; records and cursors kept) only when the provider account that consented
  is the one recorded on the connection; another account is :class:`OtherAccount`
  (``connection.reauthorize_other_account``).

A token obtained and then refused here is not stored. Where the provider revokes a single
token (RFC 7009 style), it is revoked at once; GitHub's revocation is per grant and would take
the existing connection's token with it, so there the unused token is only dropped.
"""

from __future__ import annotations

from typing import Any

from shared import health, messages
from shared.clock import isoformat
from shared.errors import Conflict, NotFound
from shared.log import get_logger
from shared.oauth import account
from shared.oauth.state import PendingFlow
from shared.ports import Filter, Ports
from shared.providers.schema import ProviderSpec
from shared.vault.tokens import TokenSet

log = get_logger("keyway.oauth")
GONE = ("disconnecting", "disconnected")


class DuplicateAccount(Conflict):
    key, title = "connection.duplicate_account", "This account is already connected"

    def __init__(self, connection: str) -> None:
        super().__init__(f"this account is already connected here as {connection}")
        self.connection = connection


class OtherAccount(Conflict):
    key, title = ("connection.reauthorize_other_account",
                  "Re-authorize with the account the connection was made with")


def _same(record: dict[str, Any], who: account.Account | None, base_url: str | None,
          installation_id: str | None) -> bool:
    if record.get("base_url") != base_url:
        return False
    if installation_id or record.get("installation_id"):
        return str(record.get("installation_id")) == str(installation_id)
    mine = (record.get("account") or {}).get("id")
    return who is not None and mine is not None and str(mine) == str(who.id)


def existing(ports: Ports, flow: PendingFlow, who: account.Account | None,
             installation_id: str | None) -> str | None:
    """Another live connection of the flow's tenant with the same account, if any."""
    snaps = ports.business.query("connections", [Filter("tenant", "==", flow.tenant),
                                                 Filter("provider", "==", flow.provider)])
    for snap in snaps:
        if (snap.id != flow.connection and snap.data.get("status") not in GONE
                and _same(snap.data, who, flow.base_url, installation_id)):
            return snap.id
    return None


def discard(spec: ProviderSpec, endpoint: Any, tokens: TokenSet) -> None:
    """Drop a token that will not be stored; revoke it where that revokes only it."""
    if spec.oauth.revoke is None or spec.oauth.revoke.style != "rfc7009":
        return
    try:
        endpoint.revoke(tokens.access_token)
    except Exception as e:  # noqa: BLE001 — best effort: the token is not kept either way
        log.warning("oauth.unused_token_not_revoked", extra={"fields": {
            "provider": spec.name, "error": type(e).__name__}})


def reauthorized(ports: Ports, flow: PendingFlow, who: account.Account | None,
                 tokens: TokenSet, api_base: str, installation_id: str | None,
                 vault: Any) -> None:
    """Store the new token under the existing connection (its account checked), turn it
    active again and ask for a sync."""
    record = ports.business.get("connections", flow.connection or "")
    if record is None or record.get("tenant") != flow.tenant or record.get("status") in GONE:
        raise NotFound("the connection to re-authorize is gone", key="connection.gone")
    if not _same(record, who, flow.base_url, installation_id):
        raise OtherAccount("the provider account that consented is not the connection's")
    if installation_id:
        vault.store_installation(flow.tenant, flow.connection, flow.user, installation_id)
    else:
        vault.store_app_token(flow.tenant, flow.connection, flow.user, tokens, flow.base_url,
                              host=flow.host)  # a self-hosted host: refreshed with its client
    ports.business.put("connections", flow.connection, {**record, "api_base": api_base,
                                                        "host": flow.host})
    health.mark(ports, flow.tenant, flow.connection, "active")
    messages.publish(ports.bus, f"oauth-{flow.provider}", f"sync-requests-{flow.provider}",
                     "sync.requested", {"tenant": flow.tenant, "connection": flow.connection,
                                        "scope": "all", "reason": "reauthorized",
                                        "requested_at": isoformat(ports.clock.now())},
                     ordering_key=flow.connection)
