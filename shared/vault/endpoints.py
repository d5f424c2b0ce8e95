"""Each provider's OAuth token and revocation endpoints, from the provider table and config.

The OAuth base URL is the connection's own (GitHub Enterprise Server, self-hosted GitLab),
else ``KEYWAY_<PROVIDER>_OAUTH_URL``, else the table's; the client id is
``KEYWAY_<PROVIDER>_CLIENT_ID`` and its secret the secret ``<provider>-client-secret``. A
provider without a client id gets an endpoint that refuses (permanently) to refresh.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import requests

from shared.errors import PermanentError
from shared.ports import Ports
from shared.providers import registry
from shared.vault.oauth import ClientCredentials, OAuthTokenClient, TokenEndpoint
from shared.vault.tokens import TokenSet


class NotConfigured(PermanentError):
    key, title = "vault.provider_not_configured", "The provider has no OAuth client configured"


class UnconfiguredEndpoint:
    def __init__(self, provider: str) -> None:
        self._provider = provider

    def exchange_code(self, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        raise NotConfigured(f"set KEYWAY_{self._provider.upper()}_CLIENT_ID")

    def refresh(self, refresh_token: str) -> TokenSet:
        raise NotConfigured(f"set KEYWAY_{self._provider.upper()}_CLIENT_ID to refresh tokens")

    def revoke(self, token: str) -> bool:
        return False


def endpoint_for(provider: str, ports: Ports, env: Mapping[str, str] | None = None,
                 session: requests.Session | None = None,
                 base_url: str | None = None) -> TokenEndpoint:
    env = os.environ if env is None else env
    spec = registry.get(provider)
    client_id = registry.client_id(spec, env)
    if not client_id:
        return UnconfiguredEndpoint(provider)
    oauth_base = registry.oauth_base_url(spec, env, base_url)
    secret = ports.secrets.access(registry.client_secret_name(spec)).decode()
    revoke_url, revoke_style = None, "rfc7009"
    if spec.oauth.revoke is not None:
        revoke_style = spec.oauth.revoke.style
        root = (registry.api_base_url(spec, env, base_url) if revoke_style == "github_grant"
                else oauth_base)
        revoke_url = root + spec.oauth.revoke.path
    return OAuthTokenClient(
        oauth_base + spec.oauth.token_path, ClientCredentials(client_id, secret),
        session or requests.Session(), ports.clock,
        revoke_url=revoke_url, revoke_style=revoke_style, client_auth=spec.oauth.client_auth,
    )
