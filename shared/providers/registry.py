"""The provider registry: the validated table, plus the environment-aware lookups around it.

* :func:`load` / :func:`get` / :func:`enabled` read ``providers.json`` once (cached per path).
* Base URLs resolve in this order: a per-connection ``override`` (GitHub Enterprise Server,
  self-hosted GitLab), then ``KEYWAY_<PROVIDER>_OAUTH_URL`` / ``KEYWAY_<PROVIDER>_API_URL``,
  then the table. An override comes from a user, so callers must have passed it through
  :func:`shared.providers.ssrf.check_base_url` first (and connect to the addresses
  :func:`~shared.providers.ssrf.resolve_checked` returns); this module only normalizes it.
* Each OAuth client is an id from the environment and a secret by name (:func:`client_id`,
  :func:`client_secret_name`): the provider's one client, and for GitHub also the GitHub App's
  own client, which only the App's install flow uses.
* :func:`endpoint_allowed` is the allowlist gate (promise 5) every provider client calls before
  a request leaves.

Encoded slashes: a ``%2F`` in a path could smuggle extra segments past template matching
(``/repos/acme%2F..%2Fx/pulls``), so it is refused everywhere except in template parameters the
table lists in ``api.encoded_slash_params``. GitLab needs that for ``{id}``, which may be a
URL-encoded ``namespace/project`` path (``/projects/group%2Fsub%2Fapp/issues``). Even there each
decoded part must be a non-empty name: no ``.``/``..``, no backslash, no double encoding.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared.errors import ConfigError, InvalidInput, NotFound
from shared.providers.schema import ProviderSpec, parse

_CLOUD_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
DEFAULT_TABLE = Path(__file__).with_name("providers.json")


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> dict[str, ProviderSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"provider table {path.name} cannot be read: {e}") from e
    return parse(data)


def load(path: Path | None = None) -> dict[str, ProviderSpec]:
    """Every provider in the table (validated, cached per path), in table order."""
    return dict(_load((path or DEFAULT_TABLE).resolve()))


def get(name: str) -> ProviderSpec:
    """The spec for ``name``; :class:`NotFound` naming it when the table has no such provider."""
    if not isinstance(name, str):
        raise InvalidInput("provider name must be a string", key="providers.invalid_name")
    spec = load().get(name)
    if spec is None:
        raise NotFound(f"unknown provider {name[:40]!r}", key="providers.unknown")
    return spec


def enabled() -> list[str]:
    """Names of the providers switched on in the table, in table order."""
    return [name for name, spec in load().items() if spec.enabled]


def _env_name(spec: ProviderSpec, suffix: str) -> str:
    return f"KEYWAY_{spec.name.upper()}_{suffix}"


def _normalize(url: str, what: str, error: type[Exception]) -> str:
    """An absolute http(s) base URL without trailing slash, query, fragment or credentials."""
    parts = urlsplit(url.strip())
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.password or parts.query or parts.fragment):
        raise error(f"{what} must be an absolute http(s) URL without credentials or query")
    return url.strip().rstrip("/")


def _override(spec: ProviderSpec, override: str) -> str:
    if not spec.self_hosted:
        raise InvalidInput(f"{spec.name} has no self-hosted base URL",
                           key="providers.no_self_hosted")
    return _normalize(override, "the connection base URL", InvalidInput)


def _from_env(spec: ProviderSpec, env: Mapping[str, str] | None, suffix: str) -> str | None:
    env = os.environ if env is None else env
    name = _env_name(spec, suffix)
    value = (env.get(name) or "").strip()
    return _normalize(value, name, ConfigError) if value else None


def oauth_base_url(spec: ProviderSpec, env: Mapping[str, str] | None = None,
                   override: str | None = None) -> str:
    """OAuth base: per-connection override > ``KEYWAY_<P>_OAUTH_URL`` > the table."""
    if override:
        return _override(spec, override)
    return _from_env(spec, env, "OAUTH_URL") or spec.oauth.base_url


def api_base_url(spec: ProviderSpec, env: Mapping[str, str] | None = None,
                 override: str | None = None) -> str:
    """API base: override + the table's self-hosted API path (GHES ``/api/v3``, GitLab
    ``/api/v4``) > ``KEYWAY_<P>_API_URL`` > the table."""
    if override:
        return _override(spec, override) + (spec.api.self_hosted_api_path or "")
    return _from_env(spec, env, "API_URL") or spec.api.base_url


def site_api_base(spec: ProviderSpec, cloud_id: str, env: Mapping[str, str] | None = None) -> str:
    """The API base of one site of a provider whose base names it (Jira Cloud:
    ``https://api.atlassian.com/ex/jira/{cloud_id}``), from the table or
    ``KEYWAY_<P>_API_URL``. The cloud id is an opaque id: letters, digits and ``-`` only."""
    base = api_base_url(spec, env)
    if "{cloud_id}" not in base:
        raise ConfigError(f"{_env_name(spec, 'API_URL')} must contain {{cloud_id}}")
    if not isinstance(cloud_id, str) or not _CLOUD_ID.fullmatch(cloud_id):
        raise InvalidInput("the site id is not an opaque id", key="providers.bad_site_id")
    return base.replace("{cloud_id}", cloud_id)


def api_origin(spec: ProviderSpec, env: Mapping[str, str] | None = None) -> str:
    """``scheme://host[:port]`` of the provider's API base (where Atlassian serves
    ``/oauth/token/accessible-resources``)."""
    parts = urlsplit(api_base_url(spec, env))
    return f"{parts.scheme}://{parts.netloc}"


def _app_client(spec: ProviderSpec, github_app: bool) -> str:
    if github_app and spec.github_app is None:
        raise InvalidInput(f"{spec.name} has no GitHub App", key="oauth.no_github_app")
    return "app-client" if github_app else "client"


def client_id_env(spec: ProviderSpec, *, github_app: bool = False) -> str:
    """The variable holding the OAuth client id: ``KEYWAY_<P>_CLIENT_ID`` (the OAuth App, or
    the provider's one client), or with ``github_app`` the GitHub App's own client,
    ``KEYWAY_<P>_APP_CLIENT_ID`` — the client GitHub issues the install flow's code to."""
    return _env_name(spec, _app_client(spec, github_app).upper().replace("-", "_") + "_ID")


def client_id(spec: ProviderSpec, env: Mapping[str, str] | None = None, *,
              github_app: bool = False) -> str | None:
    """The OAuth client id from :func:`client_id_env`, or None when not configured."""
    env = os.environ if env is None else env
    return (env.get(client_id_env(spec, github_app=github_app)) or "").strip() or None


def client_secret_name(spec: ProviderSpec, *, github_app: bool = False) -> str:
    """The secret holding that client's secret: ``<provider>-client-secret``, or with
    ``github_app`` ``<provider>-app-client-secret``."""
    return f"{spec.name}-{_app_client(spec, github_app)}-secret"


def _segment_ok(segment: str, template: str, encodable: tuple[str, ...]) -> bool:
    """One concrete path segment against one template segment."""
    decoded = unquote(segment)
    if (not segment or "%" in decoded or "\\" in decoded or decoded in (".", "..")
            or any(ord(c) < 32 or ord(c) == 127 for c in decoded)):
        return False
    if not (template.startswith("{") and template.endswith("}")):
        return segment == template
    if "/" not in decoded:
        return True
    parts = decoded.split("/")
    return template[1:-1] in encodable and all(p not in ("", ".", "..") for p in parts)


def endpoint_allowed(spec: ProviderSpec, method: str, path: str) -> bool:
    """Whether ``METHOD path`` (relative to the API base) matches one allowlist template.

    ``{name}`` matches exactly one segment; the query string is ignored; ``..``, empty
    segments, fragments and ``%2F`` (outside ``api.encoded_slash_params``) never match.
    """
    if not isinstance(method, str) or not isinstance(path, str):
        return False
    route = path.split("?", 1)[0]
    if not route.startswith("/") or "#" in route or any(ord(c) < 33 for c in route):
        return False
    segments = route.split("/")[1:]
    encodable = spec.api.encoded_slash_params
    for entry in spec.api.allowlist:
        verb, _, template = entry.partition(" ")
        parts = template.split("/")[1:]
        if verb == method.upper() and len(parts) == len(segments) and all(
                _segment_ok(s, t, encodable) for s, t in zip(segments, parts, strict=True)):
            return True
    return False
