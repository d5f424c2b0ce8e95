"""Which OAuth client a flow, a refresh or a revocation uses (promise 9).

* No base URL (github.com, gitlab.com, Bitbucket Cloud, Jira Cloud): the provider's global
  client, ``KEYWAY_<PROVIDER>_CLIENT_ID`` and the secret ``<provider>-client-secret``.
* A base URL (GitHub Enterprise Server, self-managed GitLab): the client registered for that
  host by the caller's tenant (:mod:`shared.hosts.registry`), never the global one and never
  another host's. A base URL no registered host matches is a 400
  ``oauth.host_not_registered`` before anything is stored or sent.

The flow records the host's id (``host``), and so do the connection, the identity and the
vault record, so a refresh or revocation months later finds the same host's client
(:func:`shared.vault.endpoints.endpoint_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.config import Config
from shared.hosts import registry as hosts
from shared.ports import Ports
from shared.providers import registry
from shared.providers.schema import ProviderSpec


@dataclass(frozen=True)
class FlowClient:
    base_url: str | None  # normalized, SSRF-checked; None for the provider's cloud
    host: str | None  # the registered host's id
    client_id: str | None  # None: the provider has no client configured


def for_flow(ports: Ports, config: Config, spec: ProviderSpec, tenant: str,
             base_url: object, env: Mapping[str, str], *, github_app: bool = False) -> FlowClient:
    """The OAuth client a new flow of ``tenant`` uses for ``base_url`` (None: the cloud)."""
    if base_url is None:
        return FlowClient(None, None, registry.client_id(spec, env, github_app=github_app))
    normalized = hosts.normalize(spec.name, base_url, local_mode=config.local_mode)
    host = hosts.lookup(ports, tenant, spec.name, normalized)
    return FlowClient(normalized, host.id, host.client_id)
