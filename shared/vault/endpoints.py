"""Each provider's OAuth token and revocation endpoints, from the provider table and config.

The OAuth base URL is the connection's own (GitHub Enterprise Server, self-hosted GitLab),
else ``KEYWAY_<PROVIDER>_OAUTH_URL``, else the table's; the client id is
``KEYWAY_<PROVIDER>_CLIENT_ID`` and its secret the secret ``<provider>-client-secret``. A
provider without a client id gets an endpoint that refuses (permanently) to refresh; a client
id without its secret is :class:`NotConfigured` naming the secret.

``github_app=True`` is the GitHub App's own OAuth client (``KEYWAY_GITHUB_APP_CLIENT_ID``, secret
``github-app-client-secret``): the code GitHub sends back from an App install belongs to that
client, and GitHub refuses it to any other (``bad_verification_code``). Everything else — OAuth
App connections, members' identities, refresh and revocation of stored tokens — uses the
provider's client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import requests

from shared.errors import NotFound, PermanentError
from shared.ports import Ports
from shared.providers import registry
from shared.vault.oauth import ClientCredentials, OAuthTokenClient, TokenEndpoint
from shared.vault.tokens import TokenSet


class NotConfigured(PermanentError):
    key, title = "vault.provider_not_configured", "The provider has no OAuth client configured"


class UnconfiguredEndpoint:
    def __init__(self, provider: str, variable: str | None = None) -> None:
        self._variable = variable or f"KEYWAY_{provider.upper()}_CLIENT_ID"

    def exchange_code(self, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        raise NotConfigured(f"set {self._variable}")

    def refresh(self, refresh_token: str) -> TokenSet:
        raise NotConfigured(f"set {self._variable} to refresh tokens")

    def revoke(self, token: str) -> bool:
        return False


def endpoint_for(provider: str, ports: Ports, env: Mapping[str, str] | None = None,
                 session: requests.Session | None = None,
                 base_url: str | None = None, *, github_app: bool = False) -> TokenEndpoint:
    env = os.environ if env is None else env
    spec = registry.get(provider)
    client_id = registry.client_id(spec, env, github_app=github_app)
    if not client_id:
        return UnconfiguredEndpoint(provider, registry.client_id_env(spec, github_app=github_app))
    oauth_base = registry.oauth_base_url(spec, env, base_url)
    secret_name = registry.client_secret_name(spec, github_app=github_app)
    try:
        secret = ports.secrets.access(secret_name).decode()
    except NotFound as e:
        raise NotConfigured(f"the secret {secret_name} has no enabled version") from e
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
