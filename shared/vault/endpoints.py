"""Each provider's OAuth token and revocation endpoints, from the provider table and config.

For the provider's cloud the OAuth base URL is ``KEYWAY_<PROVIDER>_OAUTH_URL``, else the
table's; the client id is
``KEYWAY_<PROVIDER>_CLIENT_ID`` and its secret the secret ``<provider>-client-secret``. A
provider without a client id gets an endpoint that refuses (permanently) to refresh; a client
id without its secret is :class:`NotConfigured` naming the secret.

A registered self-hosted host (``host``: its id, :mod:`shared.hosts.registry`) has its own
client: the host record's id and the secret it names, at the host's base URL — read at every
use, so a removed host stops being usable at once. The host must belong to the record's tenant
and provider. A base URL without a registered host (a record made before hosts were registered,
or a removed one) gets an endpoint that sends nothing: a code exchange is a 400
``oauth.host_not_registered``, a refresh :class:`HostClientMissing` (the record turns
``needs_reauth`` with that reason), a revocation ``False``. The global client is never sent to
a base URL.

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
from shared.hosts import registry as hosts
from shared.ports import Ports
from shared.providers import registry
from shared.providers.schema import ProviderSpec
from shared.vault.oauth import ClientCredentials, InvalidGrant, OAuthTokenClient, TokenEndpoint
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


class HostClientMissing(InvalidGrant):
    """No registered client can refresh this record's token: the record leaves
    ``needs_reauth`` with ``status_reason`` ``oauth.host_not_registered``."""

    key, title = "oauth.host_not_registered", "This host has no registered OAuth client"
    reauth_key = "oauth.host_not_registered"


class UnregisteredHostEndpoint:
    """A base URL without a registered host: nothing is ever sent to it."""

    def exchange_code(self, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        raise hosts.HostNotRegistered("this host has no registered OAuth client")

    def refresh(self, refresh_token: str) -> TokenSet:
        raise HostClientMissing("this host has no registered OAuth client; register it and "
                                "reconnect")

    def revoke(self, token: str) -> bool:
        return False


def _secret(ports: Ports, name: str) -> str:
    try:
        return ports.secrets.access(name).decode()
    except NotFound as e:
        raise NotConfigured(f"the secret {name} has no enabled version") from e


def _client(spec: ProviderSpec, ports: Ports, env: Mapping[str, str],
            session: requests.Session | None, base_url: str | None,
            credentials: ClientCredentials) -> OAuthTokenClient:
    oauth_base = registry.oauth_base_url(spec, env, base_url)
    revoke_url, revoke_style = None, "rfc7009"
    if spec.oauth.revoke is not None:
        revoke_style = spec.oauth.revoke.style
        root = (registry.api_base_url(spec, env, base_url) if revoke_style == "github_grant"
                else oauth_base)
        revoke_url = root + spec.oauth.revoke.path
    return OAuthTokenClient(
        oauth_base + spec.oauth.token_path, credentials, session or requests.Session(),
        ports.clock, revoke_url=revoke_url, revoke_style=revoke_style,
        client_auth=spec.oauth.client_auth,
    )


def _host_endpoint(spec: ProviderSpec, ports: Ports, env: Mapping[str, str],
                   session: requests.Session | None, host_id: str,
                   tenant: str | None) -> TokenEndpoint:
    host = hosts.get(ports, host_id)
    if host is None or host.provider != spec.name or (tenant is not None
                                                       and host.tenant != tenant):
        return UnregisteredHostEndpoint()
    credentials = ClientCredentials(host.client_id, _secret(ports, host.secret_name))
    return _client(spec, ports, env, session, host.base_url, credentials)


def endpoint_for(provider: str, ports: Ports, env: Mapping[str, str] | None = None,
                 session: requests.Session | None = None,
                 base_url: str | None = None, *, github_app: bool = False,
                 host: str | None = None, tenant: str | None = None) -> TokenEndpoint:
    """The token endpoint for the provider's cloud client, or for the registered ``host``
    (of ``tenant``); see the module docstring."""
    env = os.environ if env is None else env
    spec = registry.get(provider)
    if host is not None:
        return _host_endpoint(spec, ports, env, session, host, tenant)
    if base_url is not None:
        return UnregisteredHostEndpoint()
    client_id = registry.client_id(spec, env, github_app=github_app)
    if not client_id:
        return UnconfiguredEndpoint(provider, registry.client_id_env(spec, github_app=github_app))
    secret = _secret(ports, registry.client_secret_name(spec, github_app=github_app))
    return _client(spec, ports, env, session, None, ClientCredentials(client_id, secret))
