"""Provider differences in one declarative table (``providers.json``), validated strictly.

``schema`` holds the dataclasses and the validator, ``registry`` the cached table and the
environment-aware lookups (base URLs, client ids, the endpoint allowlist gate), ``ssrf`` the
guard for user-supplied base URLs. Provider-specific code lives in small hooks elsewhere; this
package only describes.
"""

from shared.providers.registry import (
    api_base_url,
    client_id,
    client_secret_name,
    enabled,
    endpoint_allowed,
    get,
    load,
    oauth_base_url,
)
from shared.providers.schema import ProviderSpec

__all__ = [
    "ProviderSpec", "api_base_url", "client_id", "client_secret_name", "enabled",
    "endpoint_allowed", "get", "load", "oauth_base_url",
]
