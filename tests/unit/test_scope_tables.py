"""The simulators' scope tables against the providers' published API descriptions (the pinned
copies in ``../shared/specs``, see SOURCES.md there), and ``providers.json``'s scopes against
the tables: a regression in either fails here.

The descriptions live outside the project: absent, these checks skip, except under CI=true,
where they fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyway.simulators.bitbucket_api import SCOPES as BITBUCKET
from keyway.simulators.gitlab_api import SCOPES as GITLAB
from keyway.simulators.jira_api import SCOPES as JIRA
from keyway.simulators.scopes import ScopeTable
from shared.oauth.account import _WHOAMI
from shared.providers import registry
from tests.conftest import _strict

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
TABLES: dict[str, ScopeTable] = {"gitlab": GITLAB, "jira": JIRA, "bitbucket": BITBUCKET}
# allowlisted templates a published description does not have, and why
NOT_DESCRIBED = {
    "jira": {"GET /oauth/token/accessible-resources"},  # the OAuth service's, not Jira's REST
    "bitbucket": {"GET /user/workspaces"},  # newer than the pinned description (2022)
}


def _spec(path: str):
    file = SPECS / path
    if not file.is_file():
        if _strict():
            pytest.fail(f"{file} is required under CI=true", pytrace=False)
        pytest.skip(f"{file} is absent")
    if path.endswith(".json"):
        return json.loads(file.read_text())
    yaml = pytest.importorskip("yaml")  # schemathesis brings PyYAML
    return yaml.safe_load(file.read_text())


def _operation(spec: dict, entry: str) -> dict | None:
    method, _, path = entry.partition(" ")
    return (spec["paths"].get(path) or {}).get(method.lower())


def _described(provider: str, spec: dict) -> list[tuple[str, dict]]:
    found, missing = [], set()
    for entry in registry.get(provider).api.allowlist:
        operation = _operation(spec, entry)
        (missing.add(entry) if operation is None else found.append((entry, operation)))
    assert missing == NOT_DESCRIBED[provider]
    return found


def test_the_jira_table_is_what_atlassians_description_asks_of_each_operation():
    spec = _spec("jira/swagger-v3.v3.json")
    for entry, operation in _described("jira", spec):
        classic = [frozenset(s["OAuth2"]) for s in operation["security"] if "OAuth2" in s]
        listed = [frozenset(s["scopes"]) for s in operation["x-atlassian-oauth2-scopes"]
                  if s["scheme"] == "OAuth2"]
        assert set(JIRA.required(entry)) == {*classic, *listed}, entry
    for entry in NOT_DESCRIBED["jira"]:
        assert JIRA.required(entry) is None


def test_the_bitbucket_table_is_what_bitbuckets_description_asks_of_each_operation():
    spec = _spec("bitbucket/openapi.yml")
    for entry, operation in _described("bitbucket", spec):
        oauth = [frozenset(s["oauth2"]) for s in operation["security"] if "oauth2" in s]
        assert BITBUCKET.required(entry) == tuple(oauth), entry
    assert BITBUCKET.required("GET /user/workspaces") == (frozenset({"account"}),)


def test_bitbucket_comments_on_issues_need_issue_write_and_keyway_asks_for_it():
    spec = _spec("bitbucket/openapi.yml")
    post = _operation(spec, "POST /repositories/{workspace}/{repo_slug}/issues/{issue_id}/"
                            "comments")
    assert {"oauth2": ["issue:write"]} in post["security"]
    assert "issue:write" in registry.get("bitbucket").oauth.scopes["personal"]


def _calls(provider: str) -> set[tuple[str, str]]:
    """``(template, token kind)`` of every call keyway makes: the app token reads what a sync
    lists (and registers hooks, with the registration scopes added); a personal token says
    who it belongs to when linked, then reads the thread it comments on and writes."""
    spec = registry.get(provider)
    reg = spec.webhook_registration
    hooks = set(reg.templates.values()) if reg else set()
    calls = {(_WHOAMI[provider][0], "personal")}
    for entry in spec.api.allowlist:
        if entry in hooks:
            calls.add((entry, "hooks"))
        elif "hooks" in entry or "webhook" in entry:
            continue  # listed for a registration this provider does not have (Bitbucket)
        elif entry.startswith("GET "):
            calls.add((entry, "app"))
        else:
            calls |= {(entry, "personal"), ("GET " + entry.partition(" ")[2], "personal")}
    return calls


def _scopes(provider: str, kind: str) -> tuple[str, ...]:
    spec = registry.get(provider)
    if kind == "hooks":
        return (*spec.oauth.scopes["app"], *spec.webhook_registration.scopes)
    return spec.oauth.scopes[kind]


@pytest.mark.parametrize("provider", sorted(TABLES))
def test_the_providers_json_scopes_cover_every_endpoint_keyway_calls(provider):
    table = TABLES[provider]
    refused = {(entry, kind) for entry, kind in _calls(provider)
               if not table.satisfied(entry, _scopes(provider, kind))}
    assert refused == set()


@pytest.mark.parametrize("provider", sorted(TABLES))
def test_narrowing_any_scope_of_providers_json_is_caught(provider):
    table, oauth = TABLES[provider], registry.get(provider).oauth.scopes
    calls = _calls(provider)
    for kind in ("app", "personal"):
        for dropped in oauth[kind]:
            if dropped == "offline_access":  # a refresh token, not an endpoint's scope
                continue
            narrowed = tuple(s for s in oauth[kind] if s != dropped)
            assert any(not table.satisfied(entry, narrowed) for entry, k in calls
                       if k == kind), (kind, dropped)
