"""The provider table: one strict, declarative description of every provider (STYLE habit 4),
whose allowlists can only ever name metadata endpoints (promise 5)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from shared.errors import ConfigError, InvalidInput, NotFound
from shared.providers import registry, schema

TABLE = json.loads(registry.DEFAULT_TABLE.read_text())
WRITE_LIKE = re.compile(r"write|admin|manage|delete|^repo$|^public_repo$|^api$|^sudo$")


def table() -> dict:
    return copy.deepcopy(TABLE)


def rejected(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        schema.parse(data)
    return str(caught.value)


# --- the real table ---------------------------------------------------------------------------

def test_the_real_table_loads_with_all_four_providers() -> None:
    specs = registry.load()
    assert list(specs) == ["github", "gitlab", "bitbucket", "jira"]
    assert registry.enabled() == ["github", "gitlab", "bitbucket", "jira"]
    assert all(spec.enabled for spec in specs.values())


def test_load_is_cached_and_hands_out_copies() -> None:
    first = registry.load()
    first.pop("github")
    assert "github" in registry.load()
    assert registry.load()["gitlab"] is registry.get("gitlab")


@pytest.mark.parametrize("name", ["github", "gitlab", "bitbucket", "jira"])
def test_each_provider_has_app_and_personal_scopes(name: str) -> None:
    scopes = registry.get(name).oauth.scopes
    assert set(scopes) == {"app", "personal"}
    assert scopes["app"] and scopes["personal"]


@pytest.mark.parametrize("name", ["github", "gitlab", "bitbucket", "jira"])
def test_app_token_scopes_contain_no_write_scope(name: str) -> None:
    assert not [s for s in registry.get(name).oauth.scopes["app"] if WRITE_LIKE.search(s)]


def test_jira_asks_for_consent_offline_access_and_looks_up_its_cloud_id() -> None:
    jira = registry.get("jira")
    assert jira.oauth.extra_authorize_params["audience"] == "api.atlassian.com"
    assert jira.oauth.extra_authorize_params["prompt"] == "consent"
    assert "offline_access" in jira.oauth.scopes["app"]
    assert "offline_access" in jira.oauth.scopes["personal"]
    assert jira.post_connect == "atlassian_accessible_resources"
    assert jira.api.pagination == "body_cursor" and jira.api.page_size_param == "maxResults"
    assert "GET /oauth/token/accessible-resources" in jira.api.allowlist


def test_a_site_api_base_fills_in_only_an_opaque_cloud_id() -> None:
    jira = registry.get("jira")
    assert registry.site_api_base(jira, "1324a887-45db", {}) == \
        "https://api.atlassian.com/ex/jira/1324a887-45db"
    assert registry.api_origin(jira, {}) == "https://api.atlassian.com"
    for bad in ("../x", "a/b", "", "x?y=1"):
        with pytest.raises(InvalidInput):
            registry.site_api_base(jira, bad, {})
    with pytest.raises(ConfigError, match="cloud_id"):
        registry.site_api_base(jira, "abc", {"KEYWAY_JIRA_API_URL": "https://api.example"})


def test_a_site_placeholder_goes_with_the_site_lookup() -> None:
    data = table()
    data["providers"]["jira"]["post_connect"] = None
    assert rejected(data).startswith("providers.jira.api.base_url: has {cloud_id}")
    data = table()
    data["providers"]["github"]["api"]["base_url"] = "https://api.github.com/{cloud_id}"
    assert rejected(data).startswith("providers.github.api.base_url: has {cloud_id}")


def test_github_app_asks_only_for_metadata_issue_and_pull_request_reads() -> None:
    github = registry.get("github")
    assert dict(github.github_app.permissions) == {
        "metadata": "read", "issues": "read", "pull_requests": "read"}
    assert github.github_app.installation_token_ttl_seconds == 3600
    assert github.github_app.jwt_ttl_seconds <= 600
    assert github.oauth.token_response == "form_unless_json_accepted"
    assert github.oauth.revoke.style == "github_grant"
    assert github.oauth.refresh.rotates_refresh_token
    assert github.oauth.refresh.access_token_ttl_seconds == 8 * 3600


def test_gitlab_uses_pkce_rotating_refresh_keyset_pages_and_token_header_webhooks() -> None:
    gitlab = registry.get("gitlab")
    assert gitlab.oauth.pkce and gitlab.oauth.refresh.rotates_refresh_token
    assert gitlab.oauth.refresh.access_token_ttl_seconds == 7200
    assert (gitlab.oauth.revoke.style, gitlab.oauth.revoke.path) == ("rfc7009", "/oauth/revoke")
    assert gitlab.api.pagination == "keyset"
    assert gitlab.api.rate_limit.remaining_header == "RateLimit-Remaining"
    assert (gitlab.webhook.scheme, gitlab.webhook.signature_header) == (
        "token_header", "X-Gitlab-Token")
    assert gitlab.webhook.delivery_header == "X-Gitlab-Event-UUID"


def test_bitbucket_uses_basic_client_auth_pagelen_a_local_budget_and_workspace_lists() -> None:
    bitbucket = registry.get("bitbucket")
    assert (bitbucket.oauth.client_auth, bitbucket.oauth.pkce) == ("basic", False)
    assert not bitbucket.oauth.refresh.rotates_refresh_token
    assert bitbucket.oauth.refresh.access_token_ttl_seconds == 7200
    assert (bitbucket.api.pagination, bitbucket.api.page_size_param) == ("next_url", "pagelen")
    rate = bitbucket.api.rate_limit
    assert rate.remaining_header is None and rate.reset_header is None
    assert (rate.local_budget.requests, rate.local_budget.window_seconds) == (1000, 3600)
    # the cross-workspace lists were removed by Atlassian (CHANGE-2770): never allowlisted
    assert "GET /user/workspaces" in bitbucket.api.allowlist
    assert not {"GET /repositories", "GET /workspaces", "GET /user/permissions/workspaces"} \
        & set(bitbucket.api.allowlist)
    assert (bitbucket.webhook.signature_header, bitbucket.webhook.signature_prefix,
            bitbucket.webhook.delivery_header, bitbucket.webhook.event_header) == (
        "X-Hub-Signature", "sha256=", "X-Request-UUID", "X-Event-Key")
    assert bitbucket.webhook_registration is None  # hooks are registered by hand for now


def test_a_provider_without_remaining_quota_headers_needs_a_local_budget() -> None:
    data = table()
    data["providers"]["bitbucket"]["api"]["rate_limit"]["local_budget"] = None
    assert "local_budget: required" in rejected(data)
    data = table()
    data["providers"]["github"]["api"]["rate_limit"]["reset_header"] = None
    assert "reset_header: set exactly with remaining_header" in rejected(data)
    data = table()
    data["providers"]["github"]["oauth"]["client_auth"] = "jwt"
    assert rejected(data).startswith("providers.github.oauth.client_auth: expected one of")


def test_specs_are_frozen() -> None:
    spec = registry.get("github")
    with pytest.raises(AttributeError):
        spec.enabled = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.oauth.scopes["app"] = ("repo",)  # type: ignore[index]


def test_get_names_an_unknown_provider_and_refuses_non_strings() -> None:
    with pytest.raises(NotFound, match="gitea"):
        registry.get("gitea")
    with pytest.raises(InvalidInput):
        registry.get(42)  # type: ignore[arg-type]


def test_load_reads_another_table_and_reports_a_broken_file(tmp_path: Path) -> None:
    data = table()
    data["providers"] = {"gitlab": data["providers"]["gitlab"]}
    good = tmp_path / "providers.json"
    good.write_text(json.dumps(data))
    assert list(registry.load(good)) == ["gitlab"]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError):
        registry.load(broken)


# --- strict schema ----------------------------------------------------------------------------

def test_an_unknown_top_level_key_is_rejected() -> None:
    data = table()
    data["comment"] = "hello"
    assert rejected(data) == "comment: unknown key"


def test_an_unknown_key_inside_oauth_is_rejected() -> None:
    data = table()
    data["providers"]["gitlab"]["oauth"]["notes"] = "x"
    assert rejected(data) == "providers.gitlab.oauth.notes: unknown key"


def test_an_unknown_key_inside_api_is_rejected() -> None:
    data = table()
    data["providers"]["github"]["api"]["soap"] = True
    assert rejected(data) == "providers.github.api.soap: unknown key"


def test_a_wrong_type_is_rejected_with_its_path() -> None:
    data = table()
    data["providers"]["gitlab"]["oauth"]["pkce"] = "yes"
    assert rejected(data) == "providers.gitlab.oauth.pkce: expected bool"


def test_an_int_field_refuses_a_bool() -> None:
    data = table()
    data["providers"]["github"]["api"]["per_page"] = True
    assert rejected(data).startswith("providers.github.api.per_page: expected int")


def test_a_missing_key_is_rejected() -> None:
    data = table()
    del data["providers"]["jira"]["webhook"]["max_body_bytes"]
    assert rejected(data) == "providers.jira.webhook.max_body_bytes: missing required key"


def test_an_enum_value_outside_the_enum_is_rejected() -> None:
    data = table()
    data["providers"]["github"]["api"]["pagination"] = "cursor"
    assert rejected(data).startswith("providers.github.api.pagination: expected one of")


def test_scope_kinds_are_exactly_app_and_personal() -> None:
    data = table()
    data["providers"]["gitlab"]["oauth"]["scopes"]["admin"] = ["api"]
    assert rejected(data) == "providers.gitlab.oauth.scopes.admin: unknown key"


@pytest.mark.parametrize("provider,scope", [
    ("github", "repo"), ("gitlab", "api"), ("gitlab", "write_repository"),
    ("jira", "write:jira-work"), ("bitbucket", "pullrequest:write"),
])
def test_a_write_scope_for_app_tokens_is_rejected(provider: str, scope: str) -> None:
    data = table()
    data["providers"][provider]["oauth"]["scopes"]["app"].append(scope)
    assert "write scope" in rejected(data)


def test_a_github_app_may_not_ask_for_write_or_contents() -> None:
    data = table()
    data["providers"]["github"]["github_app"]["permissions"]["issues"] = "write"
    assert rejected(data).startswith("providers.github.github_app.permissions.issues")
    data = table()
    data["providers"]["github"]["github_app"]["permissions"]["contents"] = "read"
    assert "code access" in rejected(data)


def test_webhook_registration_asks_github_for_hooks_only_and_gitlab_only_on_request() -> None:
    github, gitlab, jira = registry.get("github"), registry.get("gitlab"), registry.get("jira")
    assert github.webhook_registration.scopes == ("admin:repo_hook",)
    assert github.webhook_registration.default is True
    assert github.webhook_registration.kind == "repo"
    assert gitlab.webhook_registration.scopes == ("api",)  # read_api cannot create a hook
    assert gitlab.webhook_registration.default is False  # api is broad: the admin opts in
    assert gitlab.webhook_registration.kind == "project"
    assert registry.get("bitbucket").webhook_registration is None
    assert jira.webhook_registration.scopes == ("manage:jira-webhook",)  # webhooks only
    assert (jira.webhook_registration.kind, jira.webhook_registration.default) == ("site", True)
    assert jira.webhook_registration.expires_after_days == 30
    assert jira.webhook.client_secret_jwt is True  # Jira signs them with the client secret
    assert not github.webhook.client_secret_jwt and not gitlab.webhook.client_secret_jwt
    for spec in (github, gitlab, jira):
        for template in spec.webhook_registration.templates.values():
            assert template in spec.api.allowlist


def _registration(data: dict) -> dict:
    return data["providers"]["github"]["webhook_registration"]


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(secret="x"), "webhook_registration.secret: unknown key"),
    (lambda r: r.pop("default"), "webhook_registration.default: missing required key"),
    (lambda r: r["scopes"].append("repo"), "would grant code access"),
    (lambda r: r["scopes"].clear(), "scopes and events must not be empty"),
    (lambda r: r.update(kind="org"), "webhook_registration.kind: expected one of"),
    (lambda r: r["templates"].update(create="POST /orgs/{org}/hooks/x"),
     "templates.create: expected an allowlisted POST template"),
    (lambda r: r["templates"].update(delete="GET /repos/{owner}/{repo}/hooks"),
     "templates.delete: expected an allowlisted DELETE template"),
    (lambda r: r["templates"].update(delete="DELETE /orgs/{org}/hooks/{hook_id}"),
     "templates.delete: expected the path /repos/{owner}/{repo}/hooks/{hook_id}"),
])
def test_a_bad_webhook_registration_is_rejected(change, message: str) -> None:
    data = table()
    change(_registration(data))
    assert message in rejected(data)


def _site(data: dict) -> dict:
    return data["providers"]["jira"]["webhook_registration"]


@pytest.mark.parametrize("change,message", [
    (lambda r: r["templates"].pop("refresh"), "templates: expected exactly create, delete, "
                                              "list, refresh"),
    (lambda r: r.update(expires_after_days=None), "expires_after_days: set exactly for a site"),
    (lambda r: r["templates"].update(refresh="PUT /rest/api/3/webhook/refreshed"),
     "templates.refresh: expected an allowlisted PUT template"),
    (lambda r: r["templates"].update(delete="DELETE /rest/api/3/webhook/refresh"),
     "templates.delete: expected an allowlisted DELETE template"),
    (lambda r: r["events"].append("Issue Created"), "expected event name"),
])
def test_a_bad_site_registration_is_rejected(change, message: str) -> None:
    data = table()
    change(_site(data))
    assert message in rejected(data)


def test_a_site_registration_needs_the_client_secret_jwt_and_others_no_refresh() -> None:
    data = table()
    data["providers"]["jira"]["webhook"]["client_secret_jwt"] = False
    assert "webhook.client_secret_jwt: required by a site registration" in rejected(data)
    data = table()
    _registration(data)["templates"]["refresh"] = "GET /repos/{owner}/{repo}/hooks"
    assert "templates: expected exactly create, delete, list" in rejected(data)
    data = table()
    _registration(data)["expires_after_days"] = 30
    assert "expires_after_days: set exactly for a site" in rejected(data)


def test_registration_templates_must_be_in_the_allowlist() -> None:
    data = table()
    fetch = data["providers"]["github"]["api"]["allowlist"]["fetch"]
    fetch.remove("DELETE /repos/{owner}/{repo}/hooks/{hook_id}")
    assert "templates.delete: expected an allowlisted DELETE template" in rejected(data)


def test_a_provider_name_must_match_its_key() -> None:
    data = table()
    data["providers"]["gitlab"]["name"] = "github"
    assert rejected(data).startswith("providers.gitlab.name")


def test_a_signing_webhook_needs_a_signature_header() -> None:
    data = table()
    data["providers"]["github"]["webhook"]["signature_header"] = None
    assert rejected(data).startswith("providers.github.webhook.signature_header")


def test_a_table_base_url_must_be_https() -> None:
    data = table()
    data["providers"]["gitlab"]["api"]["base_url"] = "http://gitlab.com/api/v4"
    assert rejected(data).startswith("providers.gitlab.api.base_url")


@pytest.mark.parametrize("template", [
    "GET /repos/{owner}/{repo}/contents/{path}",
    "GET /repos/{owner}/{repo}/git/trees/{sha}",
    "GET /repos/{owner}/{repo}/git/blobs/{sha}",
    "GET /repos/{owner}/{repo}/git/refs",
    "GET /repos/{owner}/{repo}/tarball/{ref}",
    "GET /repos/{owner}/{repo}/zipball/{ref}",
    "GET /repos/{owner}/{repo}/compare/{basehead}",
    "GET /repos/{owner}/{repo}/commits/{ref}",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/files",
    "GET /repos/{owner}/{repo}/readme",
    "GET /projects/{id}/repository/archive",
    "GET /projects/{id}/repository/files/{path}/raw",
    "GET /projects/{id}/repository/tree",
    "GET /projects/{id}/repository/blobs/{sha}/raw",
    "GET /projects/{id}/merge_requests/{iid}/diffs",
    "GET /projects/{id}/merge_requests/{iid}.diff",
    "GET /projects/{id}/merge_requests/{iid}.patch",
    "GET /repositories/{workspace}/{repo_slug}/src/{commit}/{path}",
    "GET /repositories/{workspace}/{repo_slug}/diff/{spec}",
    "GET /repositories/{workspace}/{repo_slug}/diffstat/{spec}",
    "GET /repositories/{workspace}/{repo_slug}/patch/{spec}",
    "GET /REPOS/{owner}/{repo}/CONTENTS",
])
def test_an_allowlist_entry_from_a_forbidden_family_is_rejected(template: str) -> None:
    data = table()
    data["providers"]["github"]["api"]["allowlist"]["fetch"].append(template)
    assert "forbidden endpoint family" in rejected(data)


@pytest.mark.parametrize("template", [
    "POST /repos/{owner}/{repo}/pulls",           # write outside comments/hooks
    "PUT /repos/{owner}/{repo}/pulls/{n}/merge",
    "POST /rest/api/3/search",                    # a read-only POST not named as one
    "PUT /rest/api/3/search/approximate-count",   # the named read-only POST, another method
    "FETCH /repos/{owner}/{repo}/pulls",          # not an HTTP method we know
    "GET repos/{owner}",                          # not absolute
    "GET /repos/{owner}?per_page=1",              # query in a template
    "GET /repos/../{owner}",
    "GET /repos//{owner}",
])
def test_malformed_or_write_allowlist_entries_are_rejected(template: str) -> None:
    data = table()
    data["providers"]["github"]["api"]["allowlist"]["fetch"].append(template)
    assert rejected(data).startswith("providers.github.api.allowlist.fetch[")


# --- endpoint_allowed -------------------------------------------------------------------------

@pytest.mark.parametrize("provider,method,path", [
    ("github", "GET", "/repos/acme/api/pulls"),
    ("github", "GET", "/repos/acme/api/pulls?state=all&per_page=100"),
    ("github", "get", "/repos/acme/api/pulls/7/reviews"),
    ("github", "POST", "/repos/acme/api/issues/7/comments"),
    ("gitlab", "GET", "/projects/42/merge_requests"),
    ("gitlab", "GET", "/projects/group%2Fsub%2Fapi/merge_requests/3/notes"),
    ("gitlab", "POST", "/projects/group%2Fapi/issues/9/notes"),
    ("jira", "GET", "/rest/api/3/issue/ACME-1/comment"),
])
def test_metadata_endpoints_are_allowed(provider: str, method: str, path: str) -> None:
    assert registry.endpoint_allowed(registry.get(provider), method, path)


@pytest.mark.parametrize("provider,method,path", [
    ("github", "DELETE", "/repos/acme/api/pulls"),
    ("github", "POST", "/repos/acme/api/pulls"),
    ("github", "GET", "/repos/acme/api/contents/README.md"),
    ("github", "GET", "/repos/acme/api/tarball/main"),
    ("github", "GET", "/repos/acme/../api/pulls"),
    ("github", "GET", "/repos/acme/%2E%2E/pulls"),
    ("github", "GET", "/repos/acme%2Fapi/pulls"),
    ("github", "GET", "/repos/acme/api/pulls/"),
    ("github", "GET", "/repos/acme/api/pulls#x"),
    ("github", "GET", "repos/acme/api/pulls"),
    ("github", "GET", "/repos/acme/api/pu%6Cls"),
    ("gitlab", "GET", "/projects/group%2F..%2Fother/issues"),
    ("gitlab", "GET", "/projects/group%252Fapi/issues"),
    ("gitlab", "GET", "/projects/group%2F%2Fapi/issues"),
    ("gitlab", "GET", "/projects/1/merge_requests%2F2"),
    ("gitlab", "GET", "/projects/1/repository/files/a.py/raw"),
])
def test_everything_else_is_refused(provider: str, method: str, path: str) -> None:
    assert not registry.endpoint_allowed(registry.get(provider), method, path)


def test_endpoint_allowed_refuses_non_strings() -> None:
    assert not registry.endpoint_allowed(registry.get("github"), None, "/user")  # type: ignore
    assert not registry.endpoint_allowed(registry.get("github"), "GET", b"/user")  # type: ignore


# --- base URLs, client ids, secrets -----------------------------------------------------------

def test_base_urls_default_to_the_table() -> None:
    github = registry.get("github")
    assert registry.oauth_base_url(github, {}) == "https://github.com"
    assert registry.api_base_url(github, {}) == "https://api.github.com"


def test_environment_overrides_the_table() -> None:
    gitlab = registry.get("gitlab")
    env = {"KEYWAY_GITLAB_OAUTH_URL": "http://127.0.0.1:9100/",
           "KEYWAY_GITLAB_API_URL": "http://127.0.0.1:9100/api/v4"}
    assert registry.oauth_base_url(gitlab, env) == "http://127.0.0.1:9100"
    assert registry.api_base_url(gitlab, env) == "http://127.0.0.1:9100/api/v4"


def test_a_connection_override_wins_and_derives_the_api_base() -> None:
    env = {"KEYWAY_GITHUB_OAUTH_URL": "http://127.0.0.1:9000",
           "KEYWAY_GITHUB_API_URL": "http://127.0.0.1:9000/api"}
    github, gitlab = registry.get("github"), registry.get("gitlab")
    ghes = "https://ghe.example.com/"
    assert registry.oauth_base_url(github, env, ghes) == "https://ghe.example.com"
    assert registry.api_base_url(github, env, ghes) == "https://ghe.example.com/api/v3"
    self_managed = "https://git.example.com/gitlab"
    assert registry.api_base_url(gitlab, {}, self_managed) == "https://git.example.com/gitlab/api/v4"
    assert registry.oauth_base_url(gitlab, {}, self_managed) == self_managed


def test_an_override_for_a_provider_that_is_not_self_hosted_is_refused() -> None:
    with pytest.raises(InvalidInput):
        registry.api_base_url(registry.get("bitbucket"), {}, "https://bb.example.com")


def test_a_malformed_environment_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="KEYWAY_GITHUB_API_URL"):
        registry.api_base_url(registry.get("github"), {"KEYWAY_GITHUB_API_URL": "api.github"})


def test_client_id_and_secret_name_follow_the_naming_convention() -> None:
    gitlab = registry.get("gitlab")
    assert registry.client_id(gitlab, {}) is None
    assert registry.client_id(gitlab, {"KEYWAY_GITLAB_CLIENT_ID": " abc "}) == "abc"
    assert registry.client_secret_name(gitlab) == "gitlab-client-secret"


def test_the_github_app_has_its_own_client_apart_from_the_oauth_app() -> None:
    github = registry.get("github")
    env = {"KEYWAY_GITHUB_CLIENT_ID": "oauth-app", "KEYWAY_GITHUB_APP_CLIENT_ID": " Iv23.app "}
    assert registry.client_id(github, env) == "oauth-app"
    assert registry.client_id(github, env, github_app=True) == "Iv23.app"
    assert registry.client_id(github, {"KEYWAY_GITHUB_CLIENT_ID": "oauth-app"},
                              github_app=True) is None  # never falls back to the OAuth App
    assert registry.client_id_env(github, github_app=True) == "KEYWAY_GITHUB_APP_CLIENT_ID"
    assert registry.client_secret_name(github) == "github-client-secret"
    assert registry.client_secret_name(github, github_app=True) == "github-app-client-secret"
    with pytest.raises(InvalidInput):
        registry.client_secret_name(registry.get("gitlab"), github_app=True)


def test_write_limits_are_the_documented_ones_with_their_pages() -> None:
    limits = {name: spec.api.write_limits for name, spec in registry.load().items()}
    assert [(w.requests, w.window_seconds) for w in limits["github"].windows] == [
        (80, 60), (500, 3600)]
    assert [(w.requests, w.window_seconds) for w in limits["gitlab"].windows] == [(300, 60)]
    assert limits["bitbucket"].windows == limits["jira"].windows == ()  # none published
    assert "#about-secondary-rate-limits" in limits["github"].source
    assert all(spec.source.startswith("https://") and spec.note for spec in limits.values())


def test_write_limits_refuse_unknown_keys_and_two_windows_of_one_length() -> None:
    data = table()
    data["providers"]["github"]["api"]["write_limits"]["burst"] = 1
    assert "write_limits" in rejected(data)
    data = table()
    data["providers"]["github"]["api"]["write_limits"]["windows"].append(
        {"requests": 10, "window_seconds": 60})
    assert "one window per length" in rejected(data)
    data = table()
    data["providers"]["gitlab"]["api"]["write_limits"]["source"] = "http://example.com/x"
    assert "write_limits.source" in rejected(data)
