"""The provider table's schema: frozen dataclasses and a strict validator for ``providers.json``.

Every object in the table is checked field by field: unknown keys, missing keys, wrong types and
values outside an enum are all rejected with :class:`ConfigError` naming the JSON path
(``providers.gitlab.oauth.pkce: expected bool``). Beyond types, the validator enforces the
promises the table exists for:

* app-token scopes contain no write scope (promise 4);
* every allowlist template is well formed, and none matches a forbidden family — contents, git
  data, archives, raw files, repository files, commits, compare/diffs (promise 5); write methods
  are allowed only on comment and webhook-registration templates;
* a GitHub App asks only for read permissions and never for ``contents``;
* webhook registration (``webhook_registration``) names its hook templates, each in the
  allowlist under its own method (a ``site`` registration — one dynamic webhook per
  connection that expires, Jira's — also its ``refresh`` template and its lifetime), and never
  asks for a scope that grants code access;
* webhook, refresh and self-hosting fields are consistent with each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.errors import ConfigError

# Case-insensitive substrings no allowlist template may contain (the brief's families plus the
# endpoints that return file bodies or patches under other names: readme, license, PR files…).
FORBIDDEN_FRAGMENTS: tuple[str, ...] = (
    "/contents", "/git/", "/tarball", "/zipball", "/archive", "/raw", "/repository/files",
    "/compare", ".diff", ".patch", "/src/", "/diff", "/blobs", "/trees", "/tree", "/blob",
    "/files", "/commits", "/readme", "/license", "/downloads", "/filehistory", "/snapshot",
    "/patch",
)
_WRITE_SCOPE = re.compile(
    r"(^|[:_])(write|admin|manage|delete)($|[:_])|^(repo|public_repo|api|sudo)$")
_WRITE_SEGMENTS = frozenset({"comments", "comment", "notes", "hooks", "webhook"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_LITERAL = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]+$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_EVENT = re.compile(r"^([a-z]+:)?[a-z][a-z0-9_]*$")  # Jira prefixes some: jira:issue_created
_RESERVED_PARAMS = frozenset({"client_id", "redirect_uri", "state", "scope", "response_type",
                              "code_challenge", "code_challenge_method"})


@dataclass(frozen=True)
class RevokeSpec:
    style: Literal["rfc7009", "github_grant"]
    path: str  # rfc7009: POST {oauth_base}{path}; github_grant: DELETE {api_base}{path}


@dataclass(frozen=True)
class RefreshSpec:
    supported: bool
    rotates_refresh_token: bool
    access_token_ttl_seconds: int | None


@dataclass(frozen=True)
class OAuthSpec:
    base_url: str
    authorize_path: str
    token_path: str
    revoke: RevokeSpec | None
    pkce: bool
    token_response: Literal["json", "form_unless_json_accepted"]
    scopes: Mapping[str, tuple[str, ...]]  # exactly "app" and "personal"
    scope_separator: str
    extra_authorize_params: Mapping[str, str]
    refresh: RefreshSpec
    description: str = ""


@dataclass(frozen=True)
class RateLimitSpec:
    limit_header: str
    remaining_header: str
    reset_header: str
    reset_style: Literal["epoch_seconds", "seconds_from_now", "iso8601"]
    retry_after_header: str


@dataclass(frozen=True)
class ApiSpec:
    base_url: str
    pagination: Literal["link_header", "keyset", "next_url", "offset", "body_cursor"]
    per_page: int
    page_size_param: str  # the query parameter carrying per_page (per_page, pagelen, maxResults)
    rate_limit: RateLimitSpec
    allowlist: tuple[str, ...]  # "METHOD /path/{param}", relative to base_url
    self_hosted_api_path: str | None = None  # appended to a per-connection base (GHES, GitLab)
    encoded_slash_params: tuple[str, ...] = ()  # params that may hold a %2F-encoded path


@dataclass(frozen=True)
class WebhookSpec:
    scheme: Literal["hmac_sha256_hex", "token_header", "none"]
    signature_header: str | None
    signature_prefix: str
    delivery_header: str | None
    event_header: str | None
    max_body_bytes: int
    # deliveries to the app-level path may instead carry ``Authorization: Bearer <JWT>``,
    # HS256-signed with the OAuth client secret (Jira's dynamic webhooks of OAuth 2.0 apps)
    client_secret_jwt: bool = False


@dataclass(frozen=True)
class GitHubAppSpec:
    permissions: Mapping[str, str]
    installation_token_ttl_seconds: int
    jwt_ttl_seconds: int


@dataclass(frozen=True)
class HookRegistrationSpec:
    """Registering keyway's webhooks with an app token, when an admin opts in: the scopes
    added to the app scopes for it, where hooks live (``repo`` / ``project``: one per
    repository, signed with the connection's secret; ``site``: one dynamic webhook per
    connection at the app-level URL, signed by the provider with the OAuth client secret), how
    many days a hook lives before it must be refreshed (None: forever), the events, whether it
    is on unless the admin says otherwise, and the ``list``/``create``/``delete`` hook
    templates (``site`` also ``refresh``; each also in the allowlist)."""

    scopes: tuple[str, ...]
    kind: Literal["repo", "project", "site"]
    expires_after_days: int | None
    events: tuple[str, ...]
    default: bool
    templates: Mapping[str, str]
    description: str = ""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    display_name: str
    enabled: bool
    self_hosted: bool
    oauth: OAuthSpec
    api: ApiSpec
    webhook: WebhookSpec
    post_connect: Literal["atlassian_accessible_resources"] | None
    github_app: GitHubAppSpec | None
    webhook_registration: HookRegistrationSpec | None = None
    description: str = ""


Check = Callable[[Any, str], Any]


def _fail(path: str, problem: str) -> ConfigError:
    return ConfigError(f"{path or 'table'}: {problem}", key="providers.invalid")


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _of(kind: type, label: str) -> Check:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _fail(path, f"expected {label}")
        return value
    return check


_bool, _int, _str = _of(bool, "bool"), _of(int, "int"), _of(str, "string")


def _text(pattern: re.Pattern[str] | None = None, what: str = "non-empty string") -> Check:
    def check(value: Any, path: str) -> str:
        if not _str(value, path) or (pattern is not None and not pattern.match(value)):
            raise _fail(path, f"expected {what}")
        return value
    return check


def _range(low: int, high: int) -> Check:
    def check(value: Any, path: str) -> int:
        if not low <= _int(value, path) <= high:
            raise _fail(path, f"expected int between {low} and {high}")
        return value
    return check


def _enum(*allowed: str) -> Check:
    def check(value: Any, path: str) -> str:
        if value not in allowed or not isinstance(value, str):
            raise _fail(path, f"expected one of {', '.join(allowed)}")
        return value
    return check


def _opt(inner: Check) -> Check:
    return lambda value, path: None if value is None else inner(value, path)


def _list(inner: Check) -> Check:
    def check(value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _fail(path, "expected list")
        items = tuple(inner(item, f"{path}[{i}]") for i, item in enumerate(value))
        if len(set(items)) != len(items):
            raise _fail(path, "duplicate entries")
        return items
    return check


def _map(inner: Check) -> Check:
    def check(value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "expected object")
        return MappingProxyType({k: inner(v, _join(path, k)) for k, v in value.items()})
    return check


def _obj(fields: Mapping[str, Check]) -> Check:
    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "expected object")
        for key in value:
            if key not in fields:
                raise _fail(_join(path, key), "unknown key")
        for key in fields:
            if key not in value:
                raise _fail(_join(path, key), "missing required key")
        return {key: check_(value[key], _join(path, key)) for key, check_ in fields.items()}
    return check


def _https_url(value: Any, path: str) -> str:
    parts = urlsplit(_text()(value, path))
    if (parts.scheme != "https" or not parts.hostname or parts.username or parts.query
            or parts.fragment or value.endswith("/")):
        raise _fail(path, "expected https URL without credentials, query or trailing slash")
    return value


_abs_path = _text(re.compile(r"^(/[A-Za-z0-9._~{}-]+)+$"), "absolute path")
_header = _text(_HEADER, "HTTP header name")


def _template(value: Any, path: str) -> str:
    """``METHOD /literal/{param}/…``: well formed, not forbidden, writes only on comments/hooks."""
    method, _, route = _str(value, path).partition(" ")
    lowered = route.lower() + "/"
    for fragment in FORBIDDEN_FRAGMENTS:
        if fragment in lowered:
            raise _fail(path, f"forbidden endpoint family {fragment!r} (metadata only)")
    segments = route.split("/")[1:] if route.startswith("/") else []
    if method not in _METHODS or not segments or not all(
            _LITERAL.match(s) or _PARAM.match(s) for s in segments):
        raise _fail(path, "expected 'METHOD /path' with literal or {param} segments")
    if method != "GET" and not _WRITE_SEGMENTS.intersection(segments):
        raise _fail(path, f"{method} is allowed only on comment and webhook endpoints")
    return value


_scope_list = _list(_text(re.compile(r"^\S+$"), "scope without spaces"))
_SCOPE_KINDS = _obj({"app": _scope_list, "personal": _scope_list})


def _scopes(value: Any, path: str) -> Mapping[str, tuple[str, ...]]:
    checked = _SCOPE_KINDS(value, path)
    for i, scope in enumerate(checked["app"]):
        if _WRITE_SCOPE.search(scope):
            raise _fail(f"{path}.app[{i}]", f"write scope {scope!r} not allowed for app tokens")
    return MappingProxyType(checked)


_REFRESH = _obj({"supported": _bool, "rotates_refresh_token": _bool,
                 "access_token_ttl_seconds": _opt(_range(60, 86400 * 366))})
_OAUTH = _obj({
    "description": _text(), "base_url": _https_url, "authorize_path": _abs_path,
    "token_path": _abs_path, "pkce": _bool,
    "revoke": _opt(_obj({"style": _enum("rfc7009", "github_grant"), "path": _abs_path})),
    "token_response": _enum("json", "form_unless_json_accepted"), "scopes": _scopes,
    "scope_separator": _enum(" ", ","), "extra_authorize_params": _map(_text()),
    "refresh": _REFRESH,
})
_API = _obj({
    "base_url": _https_url, "self_hosted_api_path": _opt(_abs_path),
    "encoded_slash_params": _list(_text(re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"), "param name")),
    "pagination": _enum("link_header", "keyset", "next_url", "offset", "body_cursor"),
    "per_page": _range(1, 100), "allowlist": _list(_template),
    "page_size_param": _text(re.compile(r"^[A-Za-z_]+$"), "query parameter name"),
    "rate_limit": _obj({"limit_header": _header, "remaining_header": _header,
                        "reset_header": _header, "retry_after_header": _header,
                        "reset_style": _enum("epoch_seconds", "seconds_from_now", "iso8601")}),
})
_WEBHOOK = _obj({
    "scheme": _enum("hmac_sha256_hex", "token_header", "none"),
    "signature_header": _opt(_header), "signature_prefix": _str,
    "delivery_header": _opt(_header), "event_header": _opt(_header),
    "max_body_bytes": _range(1024, 32 * 1024 * 1024), "client_secret_jwt": _bool,
})
_GITHUB_APP = _obj({"permissions": _map(_enum("read")),
                    "installation_token_ttl_seconds": _range(60, 3600),
                    "jwt_ttl_seconds": _range(30, 600)})
_HOOK_VERBS = {"list": "GET", "create": "POST", "delete": "DELETE", "refresh": "PUT"}
# Scopes that would grant code access (GitHub's repo scopes, GitLab's repository scopes).
_CODE_SCOPES = frozenset({"repo", "public_repo", "read_repository", "write_repository", "sudo"})
_REGISTRATION = _obj({
    "description": _text(), "scopes": _list(_text(re.compile(r"^\S+$"), "scope")),
    "kind": _enum("repo", "project", "site"), "expires_after_days": _opt(_range(1, 365)),
    "events": _list(_text(_EVENT, "event name")), "default": _bool,
    "templates": _map(_template),
})
_PROVIDER = _obj({
    "name": _text(_NAME, "lowercase name"), "display_name": _text(), "description": _text(),
    "enabled": _bool, "self_hosted": _bool, "oauth": _OAUTH, "api": _API, "webhook": _WEBHOOK,
    "post_connect": _opt(_enum("atlassian_accessible_resources")),
    "github_app": _opt(_GITHUB_APP), "webhook_registration": _opt(_REGISTRATION),
})
_TABLE = _obj({"version": _range(1, 1), "providers": _map(_PROVIDER)})


def _cross_checks(raw: dict[str, Any], path: str) -> None:
    """Rules that span fields: consistency between related settings."""
    oauth, api, hook, app = raw["oauth"], raw["api"], raw["webhook"], raw["github_app"]
    if not oauth["refresh"]["supported"] and oauth["refresh"]["rotates_refresh_token"]:
        raise _fail(f"{path}.oauth.refresh.rotates_refresh_token", "requires supported: true")
    if set(oauth["extra_authorize_params"]) & _RESERVED_PARAMS:
        raise _fail(f"{path}.oauth.extra_authorize_params", "must not set core OAuth params")
    if raw["self_hosted"] != (api["self_hosted_api_path"] is not None):
        raise _fail(f"{path}.api.self_hosted_api_path", "required exactly when self_hosted")
    if (hook["scheme"] == "none") != (hook["signature_header"] is None):
        raise _fail(f"{path}.webhook.signature_header", "required exactly when scheme signs")
    if hook["scheme"] == "token_header" and hook["signature_prefix"]:
        raise _fail(f"{path}.webhook.signature_prefix", "must be empty for token_header")
    if (raw["post_connect"] == "atlassian_accessible_resources") != (
            "{cloud_id}" in api["base_url"]):
        raise _fail(f"{path}.api.base_url", "has {cloud_id} exactly when post_connect looks "
                    "the cloud id up")
    if app is not None and "contents" in app["permissions"]:
        raise _fail(f"{path}.github_app.permissions.contents", "code access is never requested")
    if raw["webhook_registration"] is not None:
        _registration_checks(raw["webhook_registration"], api["allowlist"],
                             f"{path}.webhook_registration")
        if raw["webhook_registration"]["kind"] == "site" and not hook["client_secret_jwt"]:
            raise _fail(f"{path}.webhook.client_secret_jwt", "required by a site registration")


def _registration_checks(reg: dict[str, Any], allowlist: tuple[str, ...], path: str) -> None:
    if not reg["scopes"] or not reg["events"]:
        raise _fail(path, "scopes and events must not be empty")
    for i, scope in enumerate(reg["scopes"]):
        if scope in _CODE_SCOPES:
            raise _fail(f"{path}.scopes[{i}]", f"{scope!r} would grant code access")
    site = reg["kind"] == "site"
    if site != (reg["expires_after_days"] is not None):
        raise _fail(f"{path}.expires_after_days", "set exactly for a site registration")
    verbs = set(_HOOK_VERBS) - (set() if site else {"refresh"})
    if set(reg["templates"]) != verbs:
        raise _fail(f"{path}.templates", f"expected exactly {', '.join(sorted(verbs))}")
    for verb, template in reg["templates"].items():
        if template.partition(" ")[0] != _HOOK_VERBS[verb] or template not in allowlist:
            raise _fail(f"{path}.templates.{verb}",
                        f"expected an allowlisted {_HOOK_VERBS[verb]} template")
    route = {verb: t.partition(" ")[2] for verb, t in reg["templates"].items()}
    # a site's hooks are deleted and refreshed by id lists in the body; the others by path
    expected = {"delete": route["create"]} if site else {"delete": route["create"] + "/{hook_id}"}
    if site:
        expected["refresh"] = route["create"] + "/refresh"
    for verb, want in expected.items():
        if route[verb] != want:
            raise _fail(f"{path}.templates.{verb}", f"expected the path {want}")


def _build(raw: dict[str, Any]) -> ProviderSpec:
    oauth, api, hook = dict(raw["oauth"]), dict(raw["api"]), raw["webhook"]
    oauth["revoke"] = RevokeSpec(**oauth["revoke"]) if oauth["revoke"] else None
    oauth["refresh"] = RefreshSpec(**oauth["refresh"])
    api["rate_limit"] = RateLimitSpec(**api["rate_limit"])
    app, reg = raw["github_app"], raw["webhook_registration"]
    return ProviderSpec(**{
        **raw, "oauth": OAuthSpec(**oauth), "api": ApiSpec(**api),
        "webhook": WebhookSpec(**hook), "github_app": GitHubAppSpec(**app) if app else None,
        "webhook_registration": HookRegistrationSpec(
            **{**reg, "templates": MappingProxyType(dict(reg["templates"]))}) if reg else None,
    })


def parse(data: Any) -> dict[str, ProviderSpec]:
    """Validate a decoded ``providers.json`` document and build its specs, in table order."""
    table = _TABLE(data, "")
    specs: dict[str, ProviderSpec] = {}
    for key, raw in table["providers"].items():
        path = f"providers.{key}"
        if raw["name"] != key:
            raise _fail(f"{path}.name", f"must equal its key {key!r}")
        _cross_checks(raw, path)
        specs[key] = _build(raw)
    if not specs:
        raise _fail("providers", "at least one provider is required")
    return specs
