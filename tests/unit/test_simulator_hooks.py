"""The simulators' webhook endpoints over real HTTP, with the providers' behaviour: GitHub's
422 for a second hook on the same URL, the scope each provider demands, a repository the user
may not administer (GitHub: 404) or maintain (GitLab: 403), deletion, and deliveries signed
with the hook's own secret sent over real HTTP to the hook's URL."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from tests.contract import _described

TIMEOUT = 5


class Receiver:
    """A loopback HTTP server that records every POST it gets and answers 202."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.append((self.path, dict(self.headers), body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def github(leak_guard):
    with GitHubSimulator(on_issue=leak_guard.track) as sim:
        sim.seed("acme", repos=3)
        yield sim


@pytest.fixture
def gitlab(leak_guard):
    with GitLabSimulator(on_issue=leak_guard.track) as sim:
        sim.seed("acme", projects=3)
        yield sim


def call(method: str, url: str, token: str, **kwargs) -> requests.Response:
    return requests.request(method, url, timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {token}"}, **kwargs)


def gh_hook(url: str, secret: str = "hook-secret-value-1", **extra) -> dict:  # noqa: S107
    return {"name": "web", "active": True, "events": ["pull_request", "issues"],
            "config": {"url": url, "content_type": "json", "secret": secret,
                       "insecure_ssl": "0"}, **extra}


# ---- GitHub ---------------------------------------------------------------------------------
def test_github_creates_lists_and_deletes_a_repository_hook(github):
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    hooks = f"{github.api_url}/repos/acme/repo-0001/hooks"
    created = call("POST", hooks, token, json=gh_hook("https://k.example/webhook-github/c/c1"))
    assert created.status_code == 201
    body = created.json()
    assert body["config"] == {"content_type": "json", "insecure_ssl": "0", "secret": "********",
                              "url": "https://k.example/webhook-github/c/c1"}
    assert body["events"] == ["pull_request", "issues"] and body["active"] is True
    assert created.headers["Location"] == body["url"]
    assert "hook-secret-value-1" not in created.text
    listed = call("GET", hooks, token)
    assert [h["id"] for h in listed.json()] == [body["id"]]
    assert call("DELETE", f"{hooks}/{body['id']}", token).status_code == 204
    assert call("DELETE", f"{hooks}/{body['id']}", token).status_code == 404
    assert call("GET", hooks, token).json() == []
    assert [h.id for h in github.hooks.deleted] == [body["id"]]


def test_github_refuses_a_second_hook_on_the_same_url_with_its_422(github):
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    hooks = f"{github.api_url}/repos/acme/repo-0001/hooks"
    assert call("POST", hooks, token, json=gh_hook("https://k.example/a")).status_code == 201
    again = call("POST", hooks, token, json=gh_hook("https://k.example/a", secret="other-1234"))
    assert again.status_code == 422
    assert again.json()["message"] == "Validation Failed"
    assert again.json()["errors"][0]["message"] == "Hook already exists on this repository"
    other_repo = f"{github.api_url}/repos/acme/repo-0002/hooks"
    assert call("POST", other_repo, token, json=gh_hook("https://k.example/a")).status_code == 201


@pytest.mark.parametrize("body", [{"name": "email", "config": {"url": "https://k.example"}},
                                  {"name": "web", "config": {}},
                                  {"name": "web", "config": {"url": "ftp://k.example"}}])
def test_github_validates_the_hook(github, body):
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    response = call("POST", f"{github.api_url}/repos/acme/repo-0001/hooks", token, json=body)
    assert response.status_code == 422 and github.hooks.all() == []


def test_github_hooks_need_the_repo_hook_scope(github):
    token = github.mint_token(scopes=("read:org", "read:user")).access_token
    hooks = f"{github.api_url}/repos/acme/repo-0001/hooks"
    for method, kwargs in (("GET", {}), ("POST", {"json": gh_hook("https://k.example/a")})):
        refused = call(method, hooks, token, **kwargs)
        assert refused.status_code == 403
        assert "admin:repo_hook" in refused.headers["X-Accepted-OAuth-Scopes"]
    reader = github.mint_token(scopes=("read:repo_hook",)).access_token
    assert call("GET", hooks, reader).status_code == 200
    assert call("POST", hooks, reader, json=gh_hook("https://k.example/a")).status_code == 403
    assert github.hooks.all() == []


def test_github_hides_the_hooks_of_a_repository_the_user_does_not_administer(github):
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    github.deny_admin("acme/repo-0002")
    hooks = f"{github.api_url}/repos/acme/repo-0002/hooks"
    assert call("POST", hooks, token, json=gh_hook("https://k.example/a")).status_code == 404
    assert call("GET", hooks, token).status_code == 404
    assert call("DELETE", f"{hooks}/1", token).status_code == 404
    assert call("GET", f"{github.api_url}/repos/acme/repo-0001/hooks", token).status_code == 200


def test_github_delivers_signed_with_the_hooks_own_secret_to_subscribed_hooks(
        github, receiver, leak_guard):
    secret = leak_guard.track("per-hook-secret-" + "x" * 12)
    token = github.mint_token(scopes=("admin:repo_hook",)).access_token
    hooks = f"{github.api_url}/repos/acme/repo-0001/hooks"
    call("POST", hooks, token, json=gh_hook(f"{receiver.url}/one", secret=secret))
    call("POST", hooks, token, json={**gh_hook(f"{receiver.url}/labels"), "events": ["label"]})
    answers = github.deliver("acme/repo-0001", "issues", {"action": "opened"})
    assert [a.status_code for a in answers] == [202]
    ((path, headers, body),) = receiver.got
    assert path == "/one" and json.loads(body) == {"action": "opened"}
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    assert headers["X-GitHub-Event"] == "issues" and headers["X-GitHub-Delivery"]
    assert github.deliver("acme/repo-0003", "issues", {}) == []  # no hook there


# ---- GitLab ---------------------------------------------------------------------------------
def test_gitlab_creates_lists_and_deletes_a_project_hook(gitlab):
    token = gitlab.mint_token(scopes=("api",)).access_token
    project = gitlab.data.list()[0]["id"]
    hooks = f"{gitlab.api_url}/projects/{project}/hooks"
    created = call("POST", hooks, token, json={
        "url": "https://k.example/webhook-gitlab/c/c1", "token": "hook-token-value-1",
        "push_events": False, "merge_requests_events": True, "note_events": True})
    assert created.status_code == 201
    body = created.json()
    assert (body["push_events"], body["merge_requests_events"], body["note_events"],
            body["issues_events"]) == (False, True, True, False)
    assert body["project_id"] == project and "token" not in body
    twice = call("POST", hooks, token, data={"url": "https://k.example/webhook-gitlab/c/c1"})
    assert twice.status_code == 201 and twice.json()["push_events"] is True  # GitLab allows it
    assert len(call("GET", hooks, token).json()) == 2
    assert call("DELETE", f"{hooks}/{body['id']}", token).status_code == 204
    missing = call("DELETE", f"{hooks}/{body['id']}", token)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Not found"})
    assert call("POST", hooks, token, json={"token": "x"}).status_code == 400


def test_gitlab_hooks_need_the_api_scope_to_write(gitlab):
    reader = gitlab.mint_token(scopes=("read_api",)).access_token
    hooks = f"{gitlab.api_url}/projects/{gitlab.data.list()[0]['id']}/hooks"
    refused = call("POST", hooks, reader, json={"url": "https://k.example/a"})
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert call("DELETE", f"{hooks}/1", reader).status_code == 403
    assert call("GET", hooks, reader).status_code == 200
    assert gitlab.hooks.all() == []


def test_gitlab_refuses_a_user_who_does_not_maintain_the_project(gitlab):
    token = gitlab.mint_token(scopes=("api",)).access_token
    project = gitlab.data.list()[1]["id"]
    gitlab.deny_maintainer(project)
    refused = call("POST", f"{gitlab.api_url}/projects/{project}/hooks", token,
                   json={"url": "https://k.example/a"})
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})


def test_gitlab_delivers_with_the_hooks_token_to_subscribed_hooks(gitlab, receiver, leak_guard):
    secret = leak_guard.track("per-hook-token-" + "y" * 12)
    token = gitlab.mint_token(scopes=("api",)).access_token
    project = gitlab.data.list()[0]["id"]
    hooks = f"{gitlab.api_url}/projects/{project}/hooks"
    call("POST", hooks, token, json={"url": f"{receiver.url}/mr", "token": secret,
                                     "push_events": False, "merge_requests_events": True})
    call("POST", hooks, token, json={"url": f"{receiver.url}/push", "token": secret})
    answers = gitlab.deliver(project, {"object_kind": "merge_request", "project": {"id": 1}})
    assert [a.status_code for a in answers] == [202]
    ((path, headers, _),) = receiver.got
    assert path == "/mr" and headers["X-Gitlab-Token"] == secret
    assert headers["X-Gitlab-Event"] == "Merge Request Hook" and headers["X-Gitlab-Event-UUID"]


def test_gitlab_hook_events_list_attempts_newest_first_with_gitlabs_filters(gitlab, receiver,
                                                                          leak_guard):
    """docs.gitlab.com "Project webhooks API", "Get a list of project webhook events":
    newest first, ``status`` by code or category (``server_failure`` takes ``internal
    error`` too), ``per_page`` 1…20, the token redacted, another project's hook 404."""
    secret = leak_guard.track("per-hook-token-" + "z" * 12)
    token = gitlab.mint_token(scopes=("api",)).access_token
    project = gitlab.data.list()[0]["id"]
    hooks = f"{gitlab.api_url}/projects/{project}/hooks"
    made = call("POST", hooks, token, json={"url": f"{receiver.url}/h", "token": secret,
                                            "push_events": False, "issues_events": True}).json()
    event = {"object_kind": "issue", "project": {"id": project},
             "object_attributes": {"action": "open"}}
    gitlab.deliver(project, event)  # answered 202
    gitlab.drop_deliveries(next_n=1)
    gitlab.deliver(project, event)  # lost: logged 503
    receiver.stop()
    gitlab.deliver(project, event)  # nothing listening: internal error
    events = f"{hooks}/{made['id']}/events"
    listed = call("GET", events, token).json()
    assert [e["response_status"] for e in listed] == ["internal error", "503", "202"]
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)
    assert listed[2]["request_headers"]["X-Gitlab-Token"] == "[REDACTED]"
    assert secret not in json.dumps(listed)
    assert listed[2]["request_data"] == event and listed[2]["trigger"] == "issue_hooks"
    failed = call("GET", events, token, params={"status": "client_failure,server_failure"})
    assert [e["response_status"] for e in failed.json()] == ["internal error", "503"]
    ok = call("GET", events, token, params={"status": "successful"}).json()
    assert [e["response_status"] for e in ok] == ["202"]
    by_code = call("GET", events, token, params={"status": "503"})
    assert [e["response_status"] for e in by_code.json()] == ["503"]
    paged = call("GET", events, token, params={"per_page": "2", "page": "2"})
    assert [e["response_status"] for e in paged.json()] == ["202"]
    assert paged.headers["X-Total"] == "3"
    for bad in ({"per_page": "21"}, {"per_page": "0"}, {"status": "failed"},
                {"status": "999"}, {"status": "202,999"}):
        assert call("GET", events, token, params=bad).status_code == 400
    other = gitlab.data.list()[1]["id"]
    missing = call("GET", f"{gitlab.api_url}/projects/{other}/hooks/{made['id']}/events", token)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Not found"})


def test_github_transfer_sends_repository_transferred_and_leaves_reach(github, receiver):
    token = github.mint_token(scopes=("repo", "admin:repo_hook")).access_token
    github.hooks.add("acme/repo-0002", receiver.url, "hook-secret", ("repository",), 0)
    github.drop_deliveries(next_n=1)  # the drop knob applies to the transfer's event too
    assert github.transfer("acme/repo-0001", "elsewhere")  # no hook: nothing sent
    assert github.transfer("acme/repo-0002", "elsewhere")
    assert not github.transfer("acme/repo-0002", "elsewhere")  # gone: unknown now
    assert receiver.got == []
    (lost,) = [d for d in github.delivery_log.records()]
    assert (lost.ok, lost.event, lost.action) == (False, "repository", "transferred")
    body = lost.payload
    assert body["repository"]["full_name"] == "elsewhere/repo-0002"
    assert body["changes"]["owner"]["from"]["organization"]["login"] == "acme"
    listed = call("GET", f"{github.api_url}/user/repos?per_page=100", token).json()
    assert [r["full_name"] for r in listed] == ["acme/repo-0003"]
    assert call("GET", f"{github.api_url}/repos/acme/repo-0002", token).status_code == 404
    assert github.hooks.list("acme/repo-0002") == []


@functools.cache
def github_webhooks() -> _described.Description:
    """GitHub's published webhook payload schemas (``x-webhooks`` of ``@octokit/openapi``,
    skipped like the contract tests when the package is absent), each as the JSON body of
    ``POST /x-webhooks/<name>``'s 200 so the contract tests' validator reads them."""
    document = _described.github().document
    paths = {f"/x-webhooks/{name}": {"post": {"responses": {"200": {"content": {
        "application/json": {"schema": hook["post"]["requestBody"]["content"][
            "application/json"]["schema"]}}}}}}
        for name, hook in document["x-webhooks"].items()}
    return _described.Description("@octokit/openapi x-webhooks", {**document, "paths": paths})


def webhook_errors(name: str, payload: dict) -> list[str]:
    described = github_webhooks()
    return described.errors(described.operation("POST", f"/x-webhooks/{name}"), 200, payload)


def test_github_deletion_and_transfer_webhooks_match_githubs_published_schemas(github):
    """Every event ``delete`` and ``transfer`` send validates against GitHub's own schema of
    it (``issues-deleted``, ``issue-comment-deleted``, ``label-deleted``,
    ``pull-request-review-comment-deleted``, ``repository-transferred``)."""
    github.seed_activity("acme", repos=1, prs=2, issues=2, comments=4, review_comments=2,
                         reviews=1)
    full_name = "acme/repo-0004"
    events = ("issues", "issue_comment", "label", "pull_request_review_comment", "repository")
    for name in (full_name, "acme/repo-0001", "acme/repo-0002"):
        github.hooks.add(name, "http://127.0.0.1:9/unheard", "hook-secret", events, 0)
    github.drop_deliveries(next_n=10)  # logged with their payloads, sent nowhere
    act = github.activity.find("acme", "repo-0004")
    issue = next(t["id"] for t in act.threads.items.values() if t["pull_id"] is None)
    for kind, ident in (("comment", min(act.comments.items)),
                        ("review_comment", min(act.review_comments.items)),
                        ("label", act.labels[0]["id"]), ("issue", issue)):
        assert github.delete(kind, ident)
    assert github.transfer(full_name, "elsewhere")
    sent = {(d.event, d.action): d.payload for d in github.delivery_log.records()}
    names = {("issues", "deleted"): "issues-deleted",
             ("issue_comment", "deleted"): "issue-comment-deleted",
             ("label", "deleted"): "label-deleted",
             ("pull_request_review_comment", "deleted"): "pull-request-review-comment-deleted",
             ("repository", "transferred"): "repository-transferred"}
    assert set(sent) == set(names)
    for key, name in names.items():
        assert webhook_errors(name, sent[key]) == [], name
    assert github.transfer("acme/repo-0001", "elsewhere")  # the same account again
    assert github.transfer("acme/repo-0002", "yonder")  # another one: an id of its own
    owners = [d.payload["repository"]["owner"] for d in github.delivery_log.records()
              if d.action == "transferred"]
    assert [o["login"] for o in owners] == ["elsewhere", "elsewhere", "yonder"]
    assert owners[0]["id"] == owners[1]["id"] != owners[2]["id"]
    assert owners[0]["node_id"] != owners[2]["node_id"]
    assert not {o["id"] for o in owners} & {o["id"] for o in github.data.orgs.values()}
