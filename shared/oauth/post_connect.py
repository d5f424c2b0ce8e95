"""What a provider needs looked up right after the code exchange, before anything is stored:
named hooks the provider table points at with ``post_connect``.

``atlassian_accessible_resources`` (Jira Cloud): ``GET /oauth/token/accessible-resources`` on
the origin of the API base (``https://api.atlassian.com``, or the simulator's), through the
egress-checked client like every provider request. It lists the sites the grant covers; the
first with a Jira scope gives the cloud id, hence the connection's API base
``https://api.atlassian.com/ex/jira/<cloud id>``, and the site kept on the connection
(``site: {id, url, name}``: the URL identifies the site's webhooks). A grant with no Jira site
is refused (``oauth.no_site``) and nothing is stored. Atlassian asks the user to pick the site
on its consent page; should a grant cover several, the first is used and
``oauth.several_sites`` is logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.clock import SystemClock
from shared.errors import PermanentError
from shared.fetch.client import ProviderClient
from shared.log import get_logger
from shared.providers import registry
from shared.providers.schema import ProviderSpec

log = get_logger("keyway.oauth")
RESOURCES = "GET /oauth/token/accessible-resources"


class NoSite(PermanentError):
    key, title = "oauth.no_site", "The authorization covers no site of this product"


@dataclass(frozen=True)
class Found:
    """The API base to use from now on and the fields to keep on the connection."""

    api_base: str
    fields: dict[str, Any] = field(default_factory=dict)


def _jira_site(resource: Any) -> bool:
    scopes = resource.get("scopes") if isinstance(resource, dict) else None
    return (isinstance(resource, dict) and isinstance(resource.get("id"), str)
            and isinstance(scopes, list) and any("jira" in str(s) for s in scopes))


def accessible_resources(spec: ProviderSpec, env: Mapping[str, str], access_token: str,
                         session: requests.Session) -> Found:
    client = ProviderClient(spec, registry.api_origin(spec, env), access_token, session,
                            SystemClock(), purpose="oauth", max_attempts=2)
    body = client.get(RESOURCES).body
    sites = [r for r in body if _jira_site(r)] if isinstance(body, list) else []
    if not sites:
        raise NoSite("the authorization covers no Jira site")
    if len(sites) > 1:
        log.info("oauth.several_sites", extra={"fields": {"provider": spec.name,
                                                          "count": len(sites)}})
    site = sites[0]
    return Found(registry.site_api_base(spec, site["id"], env), {"site": {
        "id": site["id"], "url": str(site.get("url") or "").rstrip("/").lower(),
        "name": str(site.get("name") or "")}})


HOOKS: dict[str, Callable[[ProviderSpec, Mapping[str, str], str, requests.Session], Found]] = {
    "atlassian_accessible_resources": accessible_resources,
}


def run(spec: ProviderSpec, env: Mapping[str, str], api_base: str, access_token: str,
        session: requests.Session) -> Found:
    """The provider's hook, or ``api_base`` unchanged for a provider without one."""
    if spec.post_connect is None:
        return Found(api_base)
    return HOOKS[spec.post_connect](spec, env, access_token, session)
