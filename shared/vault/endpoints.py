"""Each provider's OAuth token and revocation endpoints, from configuration.

``KEYWAY_<PROVIDER>_OAUTH_URL`` overrides the OAuth base URL (GitHub Enterprise Server,
self-hosted GitLab, the local simulators); ``KEYWAY_<PROVIDER>_CLIENT_ID`` names the OAuth
client; its secret is the secret ``<provider>-client-secret``. A provider without a client id
gets an endpoint that refuses (permanently) to refresh — nothing can be refreshed without one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from shared.errors import PermanentError
from shared.ports import Ports
from shared.vault.oauth import ClientCredentials, OAuthTokenClient, TokenEndpoint
from shared.vault.tokens import TokenSet


@dataclass(frozen=True)
class EndpointDefaults:
    oauth_url: str
    token_path: str
    revoke_path: str | None


DEFAULTS: dict[str, EndpointDefaults] = {
    "github": EndpointDefaults("https://github.com", "/login/oauth/access_token", None),
    "gitlab": EndpointDefaults("https://gitlab.com", "/oauth/token", "/oauth/revoke"),
    "bitbucket": EndpointDefaults("https://bitbucket.org", "/site/oauth2/access_token", None),
    "jira": EndpointDefaults("https://auth.atlassian.com", "/oauth/token", None),
}


class NotConfigured(PermanentError):
    key, title = "vault.provider_not_configured", "The provider has no OAuth client configured"


class UnconfiguredEndpoint:
    def __init__(self, provider: str) -> None:
        self._provider = provider

    def refresh(self, refresh_token: str) -> TokenSet:
        raise NotConfigured(f"set KEYWAY_{self._provider.upper()}_CLIENT_ID to refresh tokens")

    def revoke(self, token: str) -> bool:
        return False


def endpoint_for(provider: str, ports: Ports, env: Mapping[str, str] | None = None,
                 session: requests.Session | None = None) -> TokenEndpoint:
    env = os.environ if env is None else env
    defaults = DEFAULTS[provider]
    client_id = env.get(f"KEYWAY_{provider.upper()}_CLIENT_ID")
    if not client_id:
        return UnconfiguredEndpoint(provider)
    base = (env.get(f"KEYWAY_{provider.upper()}_OAUTH_URL") or defaults.oauth_url).rstrip("/")
    secret = ports.secrets.access(f"{provider}-client-secret").decode()
    return OAuthTokenClient(
        base + defaults.token_path, ClientCredentials(client_id, secret),
        session or requests.Session(), ports.clock,
        revoke_url=base + defaults.revoke_path if defaults.revoke_path else None,
    )
