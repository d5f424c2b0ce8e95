"""The GitHub simulator's token rules (keyway/simulators/github_tokens.py) over real HTTP:
installation tokens see only their installation and need their permissions; OAuth App tokens
without ``repo`` see no private repository and need ``public_repo`` to comment."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from keyway.simulators import GitHubSimulator
from keyway.simulators.github_api import node_id
from shared.fetch.github.graphql import DOCUMENTS
from tests.unit.test_github_app import public_pem

TIMEOUT = 5
PUBLIC, OUTSIDE, PRIVATE = "acme/repo-0001", "acme/repo-0002", "acme/repo-0003"
INTEGRATION = {"message": "Resource not accessible by integration",
               "documentation_url": "https://docs.github.com/rest", "status": "403"}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github(leak_guard, key):
    with GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=3, prs=6, issues=3, comments=6, reviews=6)
        sim.apps.register_app("77", public_pem(key), {
            "metadata": "read", "issues": "write", "pull_requests": "read"}, slug="k")
        sim.apps.add_installation(501, "acme", repositories=[PUBLIC, PRIVATE])
        yield sim


def installation_token(sim, key, leak_guard, **permissions: str) -> str:
    """A token minted through ``POST /app/installations/501/access_tokens`` with an app JWT."""
    now = int(time.time())
    assertion = leak_guard.track(jwt.encode({"iat": now - 60, "exp": now + 500, "iss": "77"},
                                            key, algorithm="RS256"))
    answer = requests.post(f"{sim.api_url}/app/installations/501/access_tokens",
                           json={"permissions": permissions} if permissions else {},
                           headers={"Authorization": f"Bearer {assertion}"}, timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def get(sim, path: str, token: str) -> requests.Response:
    return requests.get(f"{sim.api_url}{path}", headers={"Authorization": f"Bearer {token}"},
                        timeout=TIMEOUT)


def comment(sim, full_name: str, token: str) -> requests.Response:
    number = next(iter(sim.activity.find(*full_name.split("/")).by_number))
    return requests.post(f"{sim.api_url}/repos/{full_name}/issues/{number}/comments",
                         json={"body": "hello"}, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {token}"})


def review_nodes(sim, full_name: str, token: str) -> dict:
    act = sim.activity.find(*full_name.split("/"))
    ids = [node_id("011", "PullRequest", pid) for pid in sorted(act.pulls.items)]
    assert ids
    answer = requests.post(f"{sim.url}/api/graphql", timeout=TIMEOUT,
                           json={"query": DOCUMENTS["pull_request_reviews"],
                                 "variables": {"ids": ids}},
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json()


# ---- installation tokens ------------------------------------------------------------------
def test_an_installation_lists_its_selected_repositories_private_included(
        github, key, leak_guard):
    token = installation_token(github, key, leak_guard)
    answer = get(github, "/installation/repositories?per_page=1", token)
    assert answer.status_code == 200 and 'rel="next"' in answer.headers["Link"]
    body = answer.json()
    assert (body["total_count"], body["repository_selection"]) == (2, "selected")
    second = get(github, "/installation/repositories?per_page=1&page=2", token).json()
    listed = [r["full_name"] for r in body["repositories"] + second["repositories"]]
    assert listed == [PUBLIC, PRIVATE] and second["repositories"][0]["private"] is True
    assert get(github, f"/repos/{PRIVATE}/pulls", token).status_code == 200
    assert get(github, "/orgs/acme/repos", token).json() and {
        r["full_name"] for r in get(github, "/orgs/acme/repos", token).json()} == {
        PUBLIC, PRIVATE}


def test_an_installation_token_cannot_read_a_repository_outside_its_installation(
        github, key, leak_guard):
    token = installation_token(github, key, leak_guard)
    for path in ("", "/pulls", "/issues", "/labels"):
        refused = get(github, f"/repos/{OUTSIDE}{path}", token)
        assert refused.status_code == 404 and refused.json()["message"] == "Not Found"
    data = review_nodes(github, OUTSIDE, token)
    assert all(n is None for n in data["data"]["nodes"])
    assert {e["type"] for e in data["errors"]} == {"NOT_FOUND"}


def test_an_installation_token_without_pull_requests_permission_reads_no_pulls(
        github, key, leak_guard):
    token = installation_token(github, key, leak_guard, metadata="read", issues="read")
    for path in ("/pulls", "/pulls/comments", "/pulls/1/reviews"):
        refused = get(github, f"/repos/{PUBLIC}{path}", token)
        assert (refused.status_code, refused.json()) == (403, INTEGRATION)
    assert get(github, f"/repos/{PUBLIC}/issues", token).status_code == 200
    data = review_nodes(github, PUBLIC, token)
    assert all(n is None for n in data["data"]["nodes"])
    assert {e["type"] for e in data["errors"]} == {"FORBIDDEN"}
    assert comment(github, PUBLIC, token).status_code == 403  # issues: read cannot write


def test_an_installation_token_with_pull_requests_reads_reviews_through_graphql(
        github, key, leak_guard):
    token = installation_token(github, key, leak_guard)
    data = review_nodes(github, PRIVATE, token)
    assert "errors" not in data and all(n is not None for n in data["data"]["nodes"])


def repository_totals(sim, full_names: list[str], token: str) -> dict:
    ids = [sim.activity.find(*name.split("/")).repo["node_id"] for name in full_names]
    answer = requests.post(f"{sim.url}/api/graphql", timeout=TIMEOUT,
                           json={"query": DOCUMENTS["repository_totals"],
                                 "variables": {"ids": ids}},
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json()


def test_repository_totals_need_the_permission_of_each_list_like_rest(github, key, leak_guard):
    """``issues`` needs ``issues``, ``pullRequests`` needs ``pull_requests``, ``labels``
    ``metadata`` (the REST lists' permissions): without it the field is null with a
    ``FORBIDDEN`` error at its path, and the rest of the node answers."""
    full = installation_token(github, key, leak_guard)
    data = repository_totals(github, [PUBLIC, PRIVATE], full)
    assert "errors" not in data
    assert all(node["issues"] is not None and node["pullRequests"] is not None
               for node in data["data"]["nodes"])
    no_pulls = installation_token(github, key, leak_guard, metadata="read", issues="read")
    data = repository_totals(github, [PUBLIC], no_pulls)
    (node,) = data["data"]["nodes"]
    assert node["pullRequests"] is None and node["issues"] is not None
    assert node["labels"] is not None
    assert [(e["type"], e["path"], e["message"]) for e in data["errors"]] == [
        ("FORBIDDEN", ["nodes", 0, "pullRequests"], INTEGRATION["message"])]
    metadata = installation_token(github, key, leak_guard, metadata="read")
    data = repository_totals(github, [PUBLIC, PRIVATE], metadata)
    assert [(n["issues"], n["pullRequests"], n["labels"] is not None)
            for n in data["data"]["nodes"]] == [(None, None, True), (None, None, True)]
    assert sorted((e["type"], *map(str, e["path"])) for e in data["errors"]) == [
        ("FORBIDDEN", "nodes", str(i), field)
        for i in (0, 1) for field in ("issues", "pullRequests")]
    for path in ("/issues", "/pulls"):  # REST agrees
        assert get(github, f"/repos/{PUBLIC}{path}", metadata).status_code == 403


def test_installation_repositories_refuses_user_tokens(github):
    refused = get(github, "/installation/repositories", github.mint_token(("repo",)).access_token)
    assert (refused.status_code, refused.json()["message"]) == (403, INTEGRATION["message"])


# ---- OAuth App tokens ---------------------------------------------------------------------
def test_an_oauth_token_without_repo_sees_no_private_repository(github):
    token = github.mint_token(("read:org", "read:user")).access_token
    mine = get(github, "/user/repos", token)
    assert [r["full_name"] for r in mine.json()] == [PUBLIC, OUTSIDE]
    assert mine.headers["X-OAuth-Scopes"] == "read:org, read:user"
    assert mine.headers["X-Accepted-OAuth-Scopes"] == ""
    assert PRIVATE not in {r["full_name"] for r in get(github, "/orgs/acme/repos", token).json()}
    for path in ("", "/pulls", "/issues/comments"):
        assert get(github, f"/repos/{PRIVATE}{path}", token).status_code == 404
    data = review_nodes(github, PRIVATE, token)
    assert all(n is None for n in data["data"]["nodes"])
    with_repo = github.mint_token(("repo",)).access_token
    assert PRIVATE in {r["full_name"] for r in get(github, "/user/repos", with_repo).json()}
    assert get(github, f"/repos/{PRIVATE}/pulls", with_repo).status_code == 200


def test_a_comment_needs_public_repo_on_a_public_repository_and_repo_on_a_private_one(github):
    without = github.mint_token(("read:user",)).access_token
    refused = comment(github, PUBLIC, without)
    assert refused.status_code == 403
    assert refused.headers["X-Accepted-OAuth-Scopes"] == "public_repo, repo"
    assert "public_repo" in refused.json()["message"]
    public_repo = github.mint_token(("public_repo",)).access_token
    assert comment(github, PUBLIC, public_repo).status_code == 201
    assert comment(github, PRIVATE, public_repo).status_code == 404
    assert comment(github, PRIVATE, github.mint_token(("repo",)).access_token).status_code == 201


# ---- the install page ---------------------------------------------------------------------
def test_the_install_page_redirects_like_github_after_an_install(github, key):
    page = f"{github.url}/apps/k/installations/new"
    assert requests.get(page, params={"state": "s1"}, timeout=TIMEOUT,
                        allow_redirects=False).status_code == 404  # none the user may access
    github.apps.add_installation(501, "acme", users=[github.account.id])
    assert requests.get(page, params={"state": "s1"}, timeout=TIMEOUT,
                        allow_redirects=False).status_code == 400  # the app has no OAuth client
    github.apps.register_app("77", public_pem(key), slug="k", client_id="app-client",
                             client_secret="app-secret", redirect_uris=["http://127.0.0.1:9/cb"])
    github.apps.add_installation(502, "acme", users=[github.account.id])
    answer = requests.get(page, params={"state": "s1"}, timeout=TIMEOUT, allow_redirects=False)
    assert answer.status_code == 302
    target, _, query = answer.headers["Location"].partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert target == "http://127.0.0.1:9/cb" and params["state"] == "s1"
    assert (params["installation_id"], params["setup_action"]) == ("502", "install")
    assert len(params["code"]) == 20
    assert requests.get(f"{github.url}/apps/nope/installations/new", timeout=TIMEOUT,
                        allow_redirects=False).status_code == 404


def test_a_github_app_never_shares_an_oauth_client(github, key):
    github.register_client("oauth-app", "oauth-secret", ["http://127.0.0.1:9/cb"])
    with pytest.raises(ValueError):  # an OAuth App's client is not the App's
        github.apps.register_app("90", public_pem(key), slug="k", client_id="oauth-app",
                                 client_secret="oauth-secret")
    with pytest.raises(ValueError):  # an App's client has a secret of its own
        github.apps.register_app("91", public_pem(key), slug="k2", client_id="app-client")
    assert "90" not in github.apps.apps and "91" not in github.apps.apps
    assert github.oauth.clients["oauth-app"].client_secret == "oauth-secret"
