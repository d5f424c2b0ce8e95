"""The provider table's schema: frozen dataclasses and a strict validator for ``providers.json``.

Every object in the table is checked field by field: unknown keys, missing keys, wrong types and
values outside an enum are all rejected with :class:`ConfigError` naming the JSON path
(``providers.gitlab.oauth.pkce: expected bool``). Beyond types, the validator enforces the
promises the table exists for:

* app-token scopes contain no write scope (promise 4);
* the allowlist names, per client purpose (:data:`PURPOSES`, exactly those keys), the templates
  that purpose may call; every one is well formed, and none, in any purpose, matches a forbidden
  family — contents, git data, archives, raw files, repository files, commits, compare/diffs
  (promise 5); write methods are allowed only on comment, webhook-registration and
  webhook-redelivery templates;
  ``ApiSpec.allowlist`` is the derived union, ``ApiSpec.purposes`` the split;
* every GraphQL document names the purposes that may send it;
* every GraphQL document entry (``api.graphql``) names its SHA-256, variables of known types and
  every field path it selects, none of them a forbidden field (:mod:`shared.providers.graphql`
  checks the document text against the entry before it is sent);
* a GitHub App asks only for read permissions and never for ``contents``;
* webhook registration (``webhook_registration``) names its hook templates, each in the
  fetch allowlist under its own method (``list`` and ``delete`` also in the unhook one; a
  ``site`` registration — one dynamic webhook per connection that expires, Jira's — also its
  ``refresh`` template and its lifetime), and never asks for a scope that grants code access;
* webhook, refresh and self-hosting fields are consistent with each other;
* a provider that sends no remaining-quota header has a ``local_budget`` to count against;
* ``api.write_limits`` names the provider's documented limits on content creation (windows of
  ``requests`` per ``window_seconds``, at most one per window length) and the page that says
  so; an empty list means the provider publishes none (its note says what it does instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.providers import graphql as gql

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
_WRITE_SEGMENTS = frozenset({"comments", "comment", "notes", "hooks", "hook", "webhook"})
#: POSTs that only read (a query carried in the body), named one by one: Jira's issue count.
READ_ONLY_POSTS = frozenset({"POST /rest/api/3/search/approximate-count"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_LITERAL = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]+$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What a ProviderClient is built for; each purpose has its own allowlist (``api.allowlist``):
# fetch — sync reads and keyway's own hook management; act — an action's comment write and the
# thread's comments it reconciles by; oauth — identity reads at connect; unhook — listing and
# deleting keyway's hooks when a connection goes away; recover — reading the provider's log
# of webhook deliveries and asking it to redeliver (shared.webhooks.recovery).
PURPOSES = ("fetch", "act", "oauth", "unhook", "recover")
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
    client_auth: Literal["post", "basic"]  # client credentials in the form body / HTTP Basic
    scopes: Mapping[str, tuple[str, ...]]  # exactly "app" and "personal"
    scope_separator: str
    extra_authorize_params: Mapping[str, str]
    refresh: RefreshSpec
    description: str = ""


@dataclass(frozen=True)
class LocalBudgetSpec:
    """A budget keyway counts itself when the provider's answers say nothing (Bitbucket)."""

    requests: int
    window_seconds: int


@dataclass(frozen=True)
class WriteWindowSpec:
    """At most ``requests`` content-creating requests per token in any ``window_seconds``."""

    requests: int
    window_seconds: int


@dataclass(frozen=True)
class WriteLimitsSpec:
    """The provider's documented write limits (``source``); ``windows`` empty: none published."""

    windows: tuple[WriteWindowSpec, ...]
    source: str
    note: str


@dataclass(frozen=True)
class RateLimitSpec:
    limit_header: str
    remaining_header: str | None  # None: the provider sends no remaining quota (Bitbucket)
    reset_header: str | None
    reset_style: Literal["epoch_seconds", "seconds_from_now", "iso8601"]
    retry_after_header: str
    local_budget: LocalBudgetSpec | None = None
    resource_header: str | None = None  # names the budget an answer counts against (GitHub)


@dataclass(frozen=True)
class GraphQLDocumentSpec:
    """One GraphQL document the client may send; its text lives in code and must hash to
    ``sha256``, declare exactly ``variables`` and select exactly ``selects``."""

    description: str
    sha256: str
    variables: Mapping[str, str]  # name → type, e.g. "ids" → "[ID!]!"
    selects: tuple[str, ...]  # field paths, "nodes/...PullRequest/number"
    purposes: tuple[str, ...] = ("fetch",)  # the client purposes that may send it


@dataclass(frozen=True)
class GraphQLSpec:
    path: str  # POST {api_base}{path}
    self_hosted_path: str | None  # replaces api.self_hosted_api_path on a self-hosted base
    resource: str  # the rate-limit resource its answers count against ("graphql")
    max_list_length: int  # longest list variable (GitHub: 100 node ids)
    documents: Mapping[str, GraphQLDocumentSpec]


@dataclass(frozen=True)
class ApiSpec:
    base_url: str
    pagination: Literal["link_header", "keyset", "next_url", "offset", "body_cursor"]
    per_page: int
    page_size_param: str  # the query parameter carrying per_page (per_page, pagelen, maxResults)
    rate_limit: RateLimitSpec
    allowlist: tuple[str, ...]  # every purpose's templates (derived), "METHOD /path/{param}"
    purposes: Mapping[str, tuple[str, ...]]  # purpose → the templates it may call
    self_hosted_api_path: str | None = None  # appended to a per-connection base (GHES, GitLab)
    encoded_slash_params: tuple[str, ...] = ()  # params that may hold a %2F-encoded path
    graphql: GraphQLSpec | None = None  # vetted GraphQL documents; None: no GraphQL at all
    write_limits: WriteLimitsSpec = WriteLimitsSpec((), "", "")  # content-creation pacing


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
    """``METHOD /literal/{param}/…``: well formed, not forbidden, writes only on comments/hooks
    (and the read-only POSTs named in :data:`READ_ONLY_POSTS`)."""
    method, _, route = _str(value, path).partition(" ")
    lowered = route.lower() + "/"
    for fragment in FORBIDDEN_FRAGMENTS:
        if fragment in lowered:
            raise _fail(path, f"forbidden endpoint family {fragment!r} (metadata only)")
    segments = route.split("/")[1:] if route.startswith("/") else []
    if method not in _METHODS or not segments or not all(
            _LITERAL.match(s) or _PARAM.match(s) for s in segments):
        raise _fail(path, "expected 'METHOD /path' with literal or {param} segments")
    if method != "GET" and not _WRITE_SEGMENTS.intersection(segments) \
            and value not in READ_ONLY_POSTS:
        raise _fail(path, f"{method} is allowed only on comment and webhook endpoints")
    return value


_SHA256 = _text(re.compile(r"^[0-9a-f]{64}$"), "lower-case hex SHA-256")
_SELECT = _text(re.compile(r"^(\.\.\.)?[_A-Za-z][_0-9A-Za-z]*(/(\.\.\.)?[_A-Za-z][_0-9A-Za-z]*)*$"),
                "field path like nodes/...PullRequest/number")


def _select(value: Any, path: str) -> str:
    bad = gql.forbidden_segment(_SELECT(value, path))
    if bad:
        raise _fail(path, f"forbidden GraphQL field {bad!r} (metadata only)")
    return value


def _variables(value: Any, path: str) -> Mapping[str, str]:
    checked = _map(_enum(*sorted(gql.VARIABLE_TYPES)))(value, path)
    for name in checked:
        if not re.match(r"^[_A-Za-z][_0-9A-Za-z]*$", name):
            raise _fail(_join(path, name), "expected a GraphQL variable name")
    return checked


_DOCUMENT = _obj({"description": _text(), "sha256": _SHA256, "variables": _variables,
                  "selects": _list(_select), "purposes": _list(_enum(*PURPOSES))})
_GRAPHQL = _obj({"path": _abs_path, "self_hosted_path": _opt(_abs_path),
                 "resource": _text(_NAME, "lowercase name"),
                 "max_list_length": _range(1, 100),
                 "documents": _map(_DOCUMENT)})
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
    "token_response": _enum("json", "form_unless_json_accepted"),
    "client_auth": _enum("post", "basic"), "scopes": _scopes,
    "scope_separator": _enum(" ", ","), "extra_authorize_params": _map(_text()),
    "refresh": _REFRESH,
})
_WINDOW = _obj({"requests": _range(1, 1_000_000), "window_seconds": _range(1, 86400)})


def _windows(value: Any, path: str) -> tuple[dict[str, int], ...]:
    """Write-limit windows, one per window length."""
    if not isinstance(value, list):
        raise _fail(path, "expected list")
    windows = tuple(_WINDOW(item, f"{path}[{i}]") for i, item in enumerate(value))
    if len({w["window_seconds"] for w in windows}) != len(windows):
        raise _fail(path, "one window per length")
    return windows


_API = _obj({
    "base_url": _https_url, "self_hosted_api_path": _opt(_abs_path),
    "encoded_slash_params": _list(_text(re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"), "param name")),
    "pagination": _enum("link_header", "keyset", "next_url", "offset", "body_cursor"),
    "per_page": _range(1, 100), "allowlist": _obj({p: _list(_template) for p in PURPOSES}),
    "page_size_param": _text(re.compile(r"^[A-Za-z_]+$"), "query parameter name"),
    "rate_limit": _obj({"limit_header": _header, "remaining_header": _opt(_header),
                        "reset_header": _opt(_header), "retry_after_header": _header,
                        "resource_header": _opt(_header),
                        "reset_style": _enum("epoch_seconds", "seconds_from_now", "iso8601"),
                        "local_budget": _opt(_obj({"requests": _range(1, 1_000_000),
                                                   "window_seconds": _range(1, 86400)}))}),
    "graphql": _opt(_GRAPHQL),
    "write_limits": _obj({"windows": _windows,
                          "source": _text(re.compile(r"^https://[^\s?#@]+(#[A-Za-z0-9_-]+)?$"),
                                         "https page address"), "note": _text()}),
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
    rate = api["rate_limit"]
    if (rate["remaining_header"] is None) != (rate["reset_header"] is None):
        raise _fail(f"{path}.api.rate_limit.reset_header", "set exactly with remaining_header")
    if rate["remaining_header"] is None and rate["local_budget"] is None:
        raise _fail(f"{path}.api.rate_limit.local_budget",
                    "required when the provider sends no remaining quota")
    if (raw["post_connect"] == "atlassian_accessible_resources") != (
            "{cloud_id}" in api["base_url"]):
        raise _fail(f"{path}.api.base_url", "has {cloud_id} exactly when post_connect looks "
                    "the cloud id up")
    if app is not None and "contents" in app["permissions"]:
        raise _fail(f"{path}.github_app.permissions.contents", "code access is never requested")
    graphql = api["graphql"]
    if graphql is not None:
        if (graphql["self_hosted_path"] is None) != (api["self_hosted_api_path"] is None):
            raise _fail(f"{path}.api.graphql.self_hosted_path",
                        "required exactly when the API is self-hosted")
        for name in graphql["documents"]:
            if not _NAME.match(name):
                raise _fail(f"{path}.api.graphql.documents.{name}", "expected a lowercase name")
    if raw["webhook_registration"] is not None:
        _registration_checks(raw["webhook_registration"], api["allowlist"],
                             f"{path}.webhook_registration")
        if raw["webhook_registration"]["kind"] == "site" and not hook["client_secret_jwt"]:
            raise _fail(f"{path}.webhook.client_secret_jwt", "required by a site registration")


def _registration_checks(reg: dict[str, Any], allowlist: Mapping[str, tuple[str, ...]],
                         path: str) -> None:
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
        if template.partition(" ")[0] != _HOOK_VERBS[verb] or template not in allowlist["fetch"]:
            raise _fail(f"{path}.templates.{verb}",
                        f"expected an allowlisted {_HOOK_VERBS[verb]} template")
        if verb in ("list", "delete") and template not in allowlist["unhook"]:
            raise _fail(f"{path}.templates.{verb}", "expected in the unhook allowlist too")
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
    rate = dict(api["rate_limit"])
    rate["local_budget"] = LocalBudgetSpec(**rate["local_budget"]) if rate["local_budget"] \
        else None
    api["rate_limit"] = RateLimitSpec(**rate)
    writes = api["write_limits"]
    api["write_limits"] = WriteLimitsSpec(tuple(WriteWindowSpec(**w) for w in writes["windows"]),
                                          writes["source"], writes["note"])
    api["purposes"] = MappingProxyType(dict(api["allowlist"]))
    api["allowlist"] = tuple(dict.fromkeys(t for p in PURPOSES for t in api["purposes"][p]))
    if api["graphql"] is not None:
        graphql = dict(api["graphql"])
        graphql["documents"] = MappingProxyType({
            name: GraphQLDocumentSpec(**doc) for name, doc in graphql["documents"].items()})
        api["graphql"] = GraphQLSpec(**graphql)
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
