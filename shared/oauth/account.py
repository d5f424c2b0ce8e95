"""Who the token belongs to at the provider: one metadata-only request after the exchange,
through the same egress-checked client the fetchers use."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from shared.clock import SystemClock
from shared.errors import PermanentError
from shared.fetch.client import ProviderClient
from shared.http_egress import EgressBlocked
from shared.log import get_logger
from shared.providers.schema import ProviderSpec

log = get_logger("keyway.oauth")

# provider → (allowlisted endpoint template, id field, login field)
_WHOAMI: dict[str, tuple[str, str, str]] = {
    "github": ("GET /user", "id", "login"),
    "gitlab": ("GET /user", "id", "username"),
    "bitbucket": ("GET /user", "uuid", "nickname"),
    "jira": ("GET /rest/api/3/myself", "accountId", "displayName"),
}
# provider → the field naming the account's time zone, where dates in queries depend on it
# (Jira reads JQL dates in the user's zone)
_TIME_ZONE = {"jira": "timeZone"}


@dataclass(frozen=True)
class Account:
    id: str
    login: str
    time_zone: str | None = None

    def record(self) -> dict[str, str]:
        """What connections and identities keep of the account."""
        kept = {"id": self.id, "login": self.login}
        return {**kept, "time_zone": self.time_zone} if self.time_zone else kept


def whoami(spec: ProviderSpec, api_base: str, access_token: str,
           session: requests.Session) -> Account | None:
    """The provider account, or ``None`` if the provider would not say (logged, not fatal).

    Egress refusals raise (a table without the endpoint is a bug; a redirect or a refused
    address is never "the provider would not say"); an unreachable provider
    raises ``UnavailableError`` through the client.
    """
    template, id_field, login_field = _WHOAMI[spec.name]
    client = ProviderClient(spec, api_base, access_token, session, SystemClock(), purpose="oauth",
                            max_attempts=2)
    try:
        body = client.get(template).body
    except PermanentError as e:
        if e.key == "egress.refused" or isinstance(e, EgressBlocked):
            raise
        body = None
    if not isinstance(body, dict) or body.get(id_field) is None:
        log.warning("oauth.whoami_failed", extra={"fields": {"provider": spec.name}})
        return None
    zone = body.get(_TIME_ZONE.get(spec.name, ""))
    return Account(str(body[id_field]), str(body.get(login_field) or ""),
                   zone if isinstance(zone, str) and zone else None)
