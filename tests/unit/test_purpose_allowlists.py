"""Each provider client is built for one purpose and may call only that purpose's templates
(issue #17, promise 5): a sync client cannot write a comment, an action client cannot list
repositories, a connect-time identity client cannot read pull requests — refused with
EgressRefused before anything reaches the provider (the simulator's request log stays empty).
The table's split is strict: unknown or missing purposes are rejected, and the forbidden
families are refused in every purpose."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from keyway.simulators.bitbucket import BitbucketSimulator
from keyway.simulators.jira import JiraSimulator
from shared.clock import SystemClock
from shared.errors import ConfigError, InvalidInput
from shared.fetch.client import ProviderClient
from shared.fetch.errors import EgressRefused, NotFoundAtProvider, ProviderRefused
from shared.providers import registry, schema

TABLE = Path(schema.__file__).with_name("providers.json")
REPO = {"owner": "acme", "repo": "repo-0001"}
BB_REPO = {"workspace": "acme", "repo_slug": "repo-0001"}
# provider → (simulator, comment write + its params, repository list + params, pull/issue read)
CASES: dict[str, tuple[type, tuple[str, dict[str, str]], tuple[str, dict[str, str]],
                       tuple[str, dict[str, str]]]] = {
    "github": (GitHubSimulator,
               ("POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
                {**REPO, "issue_number": "1"}),
               ("GET /user/repos", {}),
               ("GET /repos/{owner}/{repo}/pulls", REPO)),
    "gitlab": (GitLabSimulator,
               ("POST /projects/{id}/merge_requests/{merge_request_iid}/notes",
                {"id": "1", "merge_request_iid": "1"}),
               ("GET /projects", {}),
               ("GET /projects/{id}/merge_requests", {"id": "1"})),
    "bitbucket": (BitbucketSimulator,
                  ("POST /repositories/{workspace}/{repo_slug}/pullrequests/{pull_request_id}"
                   "/comments", {**BB_REPO, "pull_request_id": "1"}),
                  ("GET /repositories/{workspace}", {"workspace": "acme"}),
                  ("GET /repositories/{workspace}/{repo_slug}/pullrequests", BB_REPO)),
    "jira": (JiraSimulator,
             ("POST /rest/api/3/issue/{issueIdOrKey}/comment", {"issueIdOrKey": "KW-1"}),
             ("GET /rest/api/3/project/search", {}),
             ("GET /rest/api/3/search/jql", {})),
}


@pytest.fixture(params=sorted(CASES))
def provider(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    with CASES[request.param][0]() as sim:
        yield request.param, sim


def client(name: str, sim: Any, purpose: str) -> ProviderClient:
    base = sim.site_api_url if name == "jira" else sim.api_url
    return ProviderClient(registry.get(name), base, sim.mint_token().access_token,
                          requests.Session(), SystemClock(), purpose=purpose, local_mode=True)


def refused(sim: Any, call: Any) -> None:
    with pytest.raises(EgressRefused):
        call()
    assert sim.requests_log == []


def test_a_fetch_client_cannot_post_a_comment(provider) -> None:
    name, sim = provider
    template, params = CASES[name][1]
    refused(sim, lambda: client(name, sim, "fetch").post(template, params, json={"body": "x"}))


def test_an_act_client_cannot_list_repositories(provider) -> None:
    name, sim = provider
    template, params = CASES[name][2]
    refused(sim, lambda: client(name, sim, "act").get(template, params))


def test_an_oauth_client_cannot_read_pull_requests(provider) -> None:
    name, sim = provider
    template, params = CASES[name][3]
    refused(sim, lambda: client(name, sim, "oauth").get(template, params))


def test_an_unhook_client_cannot_create_hooks_or_read_metadata(provider) -> None:
    name, sim = provider
    template, params = CASES[name][3]
    refused(sim, lambda: client(name, sim, "unhook").get(template, params))


def test_each_purpose_still_reaches_its_own_endpoints(provider) -> None:
    name, sim = provider
    template, params = CASES[name][3]
    with contextlib.suppress(NotFoundAtProvider, ProviderRefused):  # unseeded: still sent
        client(name, sim, "fetch").get(template, params)
    assert len(sim.requests_log) == 1


def test_github_reviews_graphql_is_for_fetch_clients_only() -> None:
    with GitHubSimulator() as sim:
        acting = client("github", sim, "act")
        refused(sim, lambda: acting.graphql("pull_request_reviews", {"ids": ["PR_1"]}))


def test_the_client_requires_a_known_purpose() -> None:
    spec = registry.get("github")
    with pytest.raises(TypeError):
        ProviderClient(spec, "http://127.0.0.1:9", "gho_" + "a" * 36,  # type: ignore[call-arg]
                       requests.Session(), SystemClock(), local_mode=True)
    with pytest.raises(InvalidInput):
        ProviderClient(spec, "http://127.0.0.1:9", "gho_" + "a" * 36, requests.Session(),
                       SystemClock(), purpose="admin", local_mode=True)


def table() -> dict[str, Any]:
    return copy.deepcopy(json.loads(TABLE.read_text()))


def rejected(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        schema.parse(data)
    return str(error.value)


def test_an_unknown_purpose_is_rejected() -> None:
    data = table()
    data["providers"]["github"]["api"]["allowlist"]["admin"] = ["GET /user"]
    assert "providers.github.api.allowlist.admin: unknown key" in rejected(data)


def test_a_missing_purpose_is_rejected() -> None:
    data = table()
    del data["providers"]["gitlab"]["api"]["allowlist"]["act"]
    assert "providers.gitlab.api.allowlist.act: missing required key" in rejected(data)


@pytest.mark.parametrize("purpose", schema.PURPOSES)
@pytest.mark.parametrize("template", ["GET /repos/{owner}/{repo}/contents/{path}",
                                      "GET /repos/{owner}/{repo}/git/trees/{sha}",
                                      "GET /repos/{owner}/{repo}/tarball/{ref}",
                                      "GET /repos/{owner}/{repo}/compare/{basehead}"])
def test_forbidden_families_are_rejected_in_every_purpose(purpose: str, template: str) -> None:
    data = table()
    data["providers"]["github"]["api"]["allowlist"][purpose].append(template)
    assert "forbidden endpoint family" in rejected(data)


@pytest.mark.parametrize("purpose", schema.PURPOSES)
def test_malformed_templates_are_rejected_in_every_purpose(purpose: str) -> None:
    data = table()
    data["providers"]["jira"]["api"]["allowlist"][purpose].append("GET rest/../api")
    assert f"providers.jira.api.allowlist.{purpose}[" in rejected(data)


def test_a_graphql_document_names_known_purposes() -> None:
    data = table()
    data["providers"]["github"]["api"]["graphql"]["documents"]["pull_request_reviews"][
        "purposes"] = ["admin"]
    assert "purposes[0]: expected one of" in rejected(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_derived_allowlist_is_every_purposes_templates(name: str) -> None:
    spec = registry.get(name)
    assert set(spec.api.purposes) == set(schema.PURPOSES)
    assert set(spec.api.allowlist) == {t for ts in spec.api.purposes.values() for t in ts}
