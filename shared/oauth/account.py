"""Who the token belongs to at the provider: one metadata-only request after the exchange."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from shared.errors import PolicyViolation, UnavailableError
from shared.log import get_logger
from shared.providers import registry
from shared.providers.schema import ProviderSpec

log = get_logger("keyway.oauth")

# provider → (path under the API base, id field, login field)
_WHOAMI: dict[str, tuple[str, str, str]] = {
    "github": ("/user", "id", "login"),
    "gitlab": ("/user", "id", "username"),
    "bitbucket": ("/user", "uuid", "nickname"),
    "jira": ("/me", "account_id", "name"),
}


@dataclass(frozen=True)
class Account:
    id: str
    login: str


def whoami(spec: ProviderSpec, api_base: str, access_token: str,
           session: requests.Session) -> Account | None:
    """The provider account, or ``None`` if the provider would not say (logged, not fatal)."""
    path, id_field, login_field = _WHOAMI[spec.name]
    if not registry.endpoint_allowed(spec, "GET", path):
        raise PolicyViolation(f"GET {path} is not in {spec.name}'s allowlist",
                              key="egress.refused")
    try:
        response = session.get(api_base + path, timeout=10, headers={
            "Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as e:
        log.warning("oauth.whoami_failed", extra={"fields": {"provider": spec.name}})
        if isinstance(e, requests.RequestException):
            raise UnavailableError("provider unreachable") from e
        return None
    if not isinstance(body, dict) or body.get(id_field) is None:
        log.warning("oauth.whoami_failed", extra={"fields": {"provider": spec.name}})
        return None
    return Account(str(body[id_field]), str(body.get(login_field) or ""))
