"""The scope rules the GitLab, Jira and Bitbucket simulators enforce on every endpoint, each
refused in its provider's own words, and checked before anything is read or written."""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import BitbucketSimulator, GitLabSimulator, JiraSimulator
from keyway.simulators.bitbucket_api import SCOPES as BITBUCKET
from keyway.simulators.scopes import all_of, any_of

GITLAB_BODY = {"error": "insufficient_scope", "error_description": "The request requires "
               "higher privileges than provided by the access token."}
JIRA_REFUSAL = {"code": 401, "message": "Unauthorized; scope does not match"}
LACKING = "Your credentials lack one or more required privilege scopes."


def call(method: str, url: str, token: str, **kwargs) -> requests.Response:
    return requests.request(method, url, headers={"Authorization": f"Bearer {token}"},
                            timeout=10, **kwargs)


@pytest.fixture
def gitlab(leak_guard):
    sim = GitLabSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=1, prs=1, issues=1, comments=1)
    yield sim
    sim.stop()


@pytest.fixture
def jira(leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=1, issues=1, comments=1)
    yield sim
    sim.stop()


@pytest.fixture
def bitbucket(leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=1, prs=1, issues=1, comments=1)
    yield sim
    sim.stop()


def test_gitlab_read_api_reads_but_every_write_is_insufficient_scope(gitlab):
    token = gitlab.mint_token(scopes=("read_api",)).access_token
    project = f"{gitlab.api_url}/projects/{gitlab.data.projects[0]['id']}"
    assert call("GET", f"{gitlab.api_url}/projects", token).status_code == 200
    assert call("GET", f"{project}/merge_requests/1/notes", token).status_code == 200
    for method, url, body in (("POST", f"{project}/merge_requests/1/notes", {"body": "hi"}),
                              ("POST", f"{project}/issues/1/notes", {"body": "hi"}),
                              ("POST", f"{project}/hooks", {"url": "https://example.com/h"}),
                              ("DELETE", f"{project}/hooks/1", None)):
        answer = call(method, url, token, json=body)
        assert (answer.status_code, answer.json()) == (403, {**GITLAB_BODY, "scope": "api"})
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="Protected by OAuth 2.0", '
                                    'error="insufficient_scope"') and 'scope="api"' in challenge
    assert gitlab.hooks.all() == []
    notes = call("GET", f"{project}/issues/1/notes", token).json()
    assert "hi" not in [n["body"] for n in notes]


def test_gitlab_read_user_reads_only_the_user(gitlab):
    token = gitlab.mint_token(scopes=("read_user",)).access_token
    assert call("GET", f"{gitlab.api_url}/user", token).status_code == 200
    answer = call("GET", f"{gitlab.api_url}/projects", token)
    assert (answer.status_code, answer.json()) == (403, {**GITLAB_BODY, "scope": "read_api api"})


def test_gitlab_api_writes_a_note(gitlab):
    token = gitlab.mint_token(scopes=("api",)).access_token
    project = f"{gitlab.api_url}/projects/{gitlab.data.projects[0]['id']}"
    answer = call("POST", f"{project}/issues/1/notes", token, json={"body": "hi"})
    assert answer.status_code == 201


def test_jira_wants_the_classic_or_every_granular_scope_of_an_operation(jira):
    base = jira.site_api_url + "/rest/api/3"
    key = next(iter(jira.data.projects.values())).key
    issue = f"{key}-1"
    reader = jira.mint_token(scopes=("read:jira-work", "read:jira-user")).access_token
    assert call("GET", f"{base}/project/search", reader).status_code == 200
    assert call("GET", f"{base}/myself", reader).status_code == 200
    granular = jira.mint_token(scopes=("read:issue-details:jira", "read:audit-log:jira",
                                       "read:avatar:jira", "read:field-configuration:jira",
                                       "read:issue-meta:jira")).access_token
    assert call("GET", f"{base}/search/jql", granular,
                params={"jql": f"project = {key} ORDER BY updated ASC"}).status_code == 200
    partial = jira.mint_token(scopes=("read:issue-details:jira",)).access_token
    for token, method, path in ((partial, "GET", "/search/jql"),
                                (reader, "POST", f"/issue/{issue}/comment"),
                                (reader, "GET", "/webhook"),
                                (jira.mint_token(scopes=("read:jira-work",)).access_token,
                                 "GET", "/myself")):
        answer = call(method, base + path, token, json={"body": {}})
        assert (answer.status_code, answer.json()) == (401, JIRA_REFUSAL), path
    assert len(jira.data.comments) == 1  # the refused POST wrote nothing


def test_jira_write_jira_work_posts_a_comment(jira):
    token = jira.mint_token(scopes=("read:jira-work", "write:jira-work")).access_token
    body = {"body": {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}]}}
    issue = f"{next(iter(jira.data.projects.values())).key}-1"
    answer = call("POST", f"{jira.site_api_url}/rest/api/3/issue/{issue}/comment", token,
                  json=body)
    assert answer.status_code == 201


def test_bitbucket_lists_granted_and_required_scopes_when_it_refuses(bitbucket):
    repo = f"{bitbucket.api_url}/repositories/acme/repo-0001"
    reader = bitbucket.mint_token(scopes=("account", "pullrequest", "issue")).access_token
    assert call("GET", repo, reader).status_code == 200  # pullrequest implies repository
    assert call("GET", f"{repo}/issues/1/comments", reader).status_code == 200
    answer = call("POST", f"{repo}/issues/1/comments", reader, json={"content": {"raw": "x"}})
    assert (answer.status_code, answer.json()) == (403, {"type": "error", "error": {
        "message": LACKING, "detail": {"granted": ["account", "issue", "pullrequest"],
                                       "required": ["issue:write"]}}})
    account_only = bitbucket.mint_token(scopes=("account",)).access_token
    assert call("GET", f"{bitbucket.api_url}/user", account_only).status_code == 200
    answer = call("GET", f"{repo}/pullrequests", account_only)
    assert answer.status_code == 403
    assert answer.json()["error"]["detail"]["required"] == ["pullrequest"]
    used = bitbucket.quota_used(bitbucket.account.id)
    call("GET", f"{repo}/pullrequests", account_only)
    assert bitbucket.quota_used(bitbucket.account.id) == used  # refused before it is counted


def test_bitbucket_issue_write_comments_and_implies_issue(bitbucket):
    writer = bitbucket.mint_token(scopes=("account", "pullrequest", "issue:write")).access_token
    repo = f"{bitbucket.api_url}/repositories/acme/repo-0001"
    assert call("GET", f"{repo}/issues", writer).status_code == 200
    answer = call("POST", f"{repo}/issues/1/comments", writer, json={"content": {"raw": "x"}})
    assert answer.status_code == 201


def test_bitbucket_consumer_permissions_not_the_request_decide_the_scopes(bitbucket):
    bitbucket.register_client("narrow", "narrow-secret-1", ["http://127.0.0.1/cb"],
                              scopes=("account",))
    located = requests.get(f"{bitbucket.oauth_url}/site/oauth2/authorize", timeout=10,
                           allow_redirects=False, params={
                               "client_id": "narrow", "response_type": "code",
                               "scope": "account pullrequest issue:write"})
    code = located.headers["Location"].split("code=")[1].split("&")[0]
    issued = requests.post(f"{bitbucket.oauth_url}/site/oauth2/access_token", timeout=10,
                           auth=("narrow", "narrow-secret-1"),
                           data={"grant_type": "authorization_code", "code": code}).json()
    assert issued["scopes"] == "account"
    answer = call("GET", f"{bitbucket.api_url}/repositories/acme", issued["access_token"])
    assert answer.status_code == 403


def test_scope_implication_is_transitive_and_requirements_read_as_documented():
    held = BITBUCKET.granted(("pullrequest:write",))
    assert {"pullrequest", "repository", "repository:write"} <= held
    assert any_of("a", "b") == (frozenset({"a"}), frozenset({"b"}))
    assert all_of("a", "b") == (frozenset({"a", "b"}),)
    assert BITBUCKET.satisfied("GET /repositories/{workspace}/{repo_slug}/src/{commit}/{path}",
                               ("pullrequest",))  # code needs repository: keyway never asks
