"""Webhook registration end to end, with the stack served over real HTTP so the simulators'
deliveries reach it: an admin connects → the first sync registers keyway's hook on each
repository/project (signed with a fresh per-connection secret) → the simulator delivers a
signed event to ``/webhook-P/c/<connection>`` → ingest writes the record; disconnect → the
hooks are deleted at the provider, the secret is gone and a delivery answers 404. And every
way it must not happen: registration off, a GitHub App install, another tenant, a forgery."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared import messages, policy
from shared.entry import event_function
from shared.errors import NotFound
from shared.records.model import record_id
from shared.routing import handlers_for
from shared.webhooks import hooks
from tests.integration.conftest import function_app, query_of
from tests.unit.test_entry import pubsub_event

TENANT, OTHER = "tenant-h", "tenant-x"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOPICS = ("sync-requests", "connection-control", "fetch-jobs", "events")


def _callback(stack, provider: str) -> str:
    return f"{stack.config.public_url}/oauth-{provider}/callback"


@pytest.fixture
def github(served, monkeypatch, leak_guard):
    sim = GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track).start()  # OAuth App
    sim.register_client("gh-client", "gh-client-secret-1", [_callback(served, "github")])
    served.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                           sim.oauth_url, sim.api_url)
    # repo-0003 is private: an OAuth App token without ``repo`` does not see it at all
    sim.seed_activity("acme", repos=4, prs=4, issues=4, comments=6)
    sim.deny_admin("acme/repo-0004")  # the admin does not administer this one
    yield sim
    sim.stop()


@pytest.fixture
def gitlab(served, monkeypatch, leak_guard):
    sim = GitLabSimulator(on_issue=leak_guard.track).start()
    sim.register_client("gl-client", "gl-client-secret-1", [_callback(served, "gitlab")])
    served.provider_config(monkeypatch, "gitlab", "gl-client", "gl-client-secret-1",
                           sim.oauth_url, sim.api_url)
    projects = sim.seed_activity("acme", repos=2, prs=3, issues=3, comments=4)
    sim.deny_maintainer(projects[1]["id"])
    yield sim
    sim.stop()


# ---- driving the stack --------------------------------------------------------------------
def connect(stack, provider: str, tenant: str = TENANT, **body) -> tuple[str, dict]:
    admin = stack.token(tenant, "admin-1", "admin")
    started = stack.call("POST", "/api/v1/connections", admin, json={"provider": provider,
                                                                     **body})
    assert started.status_code == 201, started.get_data(as_text=True)
    url = stack.through_start(started.json["authorize_url"])
    back = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    done = stack.call("GET", f"/oauth-{provider}/callback?" + back.split("?", 1)[1])
    assert query_of(done.headers["Location"])["status"] == "connected"
    return started.json["connection"], query_of(url)


def pump(stack, provider: str) -> int:
    """Hand every waiting message to its subscriber's entry point until nothing is left."""
    handled = 0
    while True:
        got = []
        for topic in (f"{t}-{provider}" for t in TOPICS):
            batch: list = []
            stack.ports.bus.pull(policy.subscription_name(topic), batch.append, max_messages=50)
            got += [(topic, m) for m in batch]
        if not got:
            return handled
        for topic, m in got:
            inbound = messages.decode(topic, m.data, m.attributes, m.message_id)
            receive = event_function(policy.ROUTES[topic].subscriber,
                                     handlers_for(policy.ROUTES[topic].subscriber))
            receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))
            handled += 1


def registrations(stack, connection: str) -> dict[str, dict]:
    return {r["external_id"]: r
            for r in hooks.for_connection(stack.ports.business, connection).values()}


def secret_of(stack, connection: str) -> bytes:
    return stack.leak_guard.track(stack.ports.secrets.access(f"webhook-secret-{connection}"))


def disconnect(stack, provider: str, connection: str, tenant: str = TENANT) -> int:
    status = stack.call("DELETE", f"/api/v1/connections/{connection}",
                        stack.token(tenant, "admin-1", "admin")).status_code
    pump(stack, provider)
    return status


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def github_event(repo: dict) -> dict:
    payload = json.loads((FIXTURES / "github/webhooks/pull_request.opened.json").read_text())
    for where in (payload["repository"], payload["pull_request"]["base"]["repo"],
                  payload["pull_request"]["head"]["repo"]):
        where.update(id=repo["id"], name=repo["name"], full_name=repo["full_name"])
    payload["number"] = 4242
    payload["pull_request"].update(number=4242, id=990_000_001, title="Registered hook works",
                                   updated_at=now_iso())
    return payload


def gitlab_event(project: dict) -> dict:
    payload = json.loads((FIXTURES / "gitlab/webhooks/merge_request.open.json").read_text())
    payload["project"]["id"] = project["id"]
    payload["object_attributes"].update(iid=4242, id=990_000_002, target_project_id=project["id"],
                                        source_project_id=project["id"], updated_at=now_iso(),
                                        title="Registered hook works")
    return payload


def cold_webhook_instance(provider: str, connection: str, body: bytes, headers: dict):
    """A ``webhook-P`` instance that never cached the secret (a new function instance)."""
    return Client(function_app(f"webhook-{provider}")).post(
        f"/c/{connection}", data=body, headers={"Content-Type": "application/json", **headers})


# ---- end to end -----------------------------------------------------------------------------
def test_github_connect_registers_hooks_that_deliver_and_disconnect_removes_them(served, github):
    connection, authorize = connect(served, "github")
    assert set(authorize["scope"].split()) == {"read:org", "read:user", "admin:repo_hook"}
    assert served.ports.business.get("connections", connection)["register_webhooks"] is True
    listed = served.call("GET", "/api/v1/connections", served.token(TENANT, "admin-1", "admin"))
    assert listed.json["items"][0]["register_webhooks"] is True
    secret = secret_of(served, connection)
    pump(served, "github")

    url = f"{served.config.public_url}/webhook-github/c/{connection}"
    at_github = github.hooks.all()
    assert sorted(h.target for h in at_github) == ["acme/repo-0001", "acme/repo-0002"]
    assert {h.url for h in at_github} == {url}
    assert {h.secret.encode() for h in at_github} == {secret}
    records = registrations(served, connection)
    assert sorted(r["status"] for r in records.values()) == ["active", "active", "unavailable"]
    private = next(r for r in github.data.list() if r["private"])
    assert str(private["id"]) not in records  # invisible without the repo scope
    assert secret.decode() not in json.dumps(list(records.values()))

    repo = github.data.list()[0]
    (answer,) = github.deliver(repo["full_name"], "pull_request", github_event(repo))
    assert (answer.status_code, answer.json()) == (202, {"status": "accepted"})
    pump(served, "github")
    pr = served.ports.business.get("pull_requests", record_id(
        TENANT, "github", "pull_requests", f"{repo['id']}#4242"))
    assert pr["title"] == "Registered hook works" and pr["connection"] == connection

    forged = requests.post(url, data=json.dumps(github_event(repo)).encode(), timeout=10,
                           headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "f-1",
                                    "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 401

    assert disconnect(served, "github", connection) == 202
    assert github.hooks.all() == []
    assert sorted(h.target for h in github.hooks.deleted) == ["acme/repo-0001", "acme/repo-0002"]
    assert {r["status"] for r in registrations(served, connection).values()} == {
        "removed", "unavailable"}
    with pytest.raises(NotFound):
        served.ports.secrets.access(f"webhook-secret-{connection}")
    assert served.ports.business.get("connections", connection)["status"] == "disconnected"
    assert github.deliver(repo["full_name"], "pull_request", github_event(repo)) == []
    body = json.dumps(github_event(repo)).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    late = cold_webhook_instance("github", connection, body, {
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "late-1",
        "X-Hub-Signature-256": signature})
    assert late.status_code == 404 and late.json["code"] == "webhook.github.unknown_connection"


def test_gitlab_registers_project_hooks_only_when_asked_and_removes_them(served, gitlab):
    connection, authorize = connect(served, "gitlab", register_webhooks=True)
    assert set(authorize["scope"].split()) == {"read_api", "api"}
    secret = secret_of(served, connection)
    pump(served, "gitlab")
    projects = gitlab.data.list()
    (hook,) = gitlab.hooks.all()  # the second project's user is no maintainer
    assert hook.target == str(projects[0]["id"]) and hook.secret.encode() == secret
    assert "push_events" not in hook.events and "merge_requests_events" in hook.events
    denied = registrations(served, connection)[str(projects[1]["id"])]
    assert (denied["status"], denied["reason"]) == ("unavailable", "provider.refused")

    (answer,) = gitlab.deliver(projects[0]["id"], gitlab_event(projects[0]))
    assert answer.status_code == 202
    pump(served, "gitlab")
    mr = served.ports.business.get("pull_requests", record_id(
        TENANT, "gitlab", "pull_requests", f"{projects[0]['id']}#4242"))
    assert mr["title"] == "Registered hook works"

    assert disconnect(served, "gitlab", connection) == 202
    assert gitlab.hooks.all() == [] and [h.id for h in gitlab.hooks.deleted] == [hook.id]
    with pytest.raises(NotFound):
        served.ports.secrets.access(f"webhook-secret-{connection}")
    body = json.dumps(gitlab_event(projects[0])).encode()
    late = cold_webhook_instance("gitlab", connection, body, {
        "X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": secret.decode()})
    assert late.status_code == 404


# ---- when it must not happen ----------------------------------------------------------------
@pytest.mark.parametrize(("provider", "body"), [("gitlab", {}),  # GitLab: off by default
                                                ("github", {"register_webhooks": False})])
def test_registration_off_asks_no_scope_registers_no_hook_and_stores_no_secret(
        served, github, gitlab, provider, body):
    connection, authorize = connect(served, provider, **body)
    assert not {"api", "admin:repo_hook"} & set(authorize["scope"].split())
    pump(served, provider)
    sim = github if provider == "github" else gitlab
    assert sim.hooks.all() == [] and registrations(served, connection) == {}
    assert not [r for r in sim.requests_log if "/hooks" in r.path]
    with pytest.raises(NotFound):
        served.ports.secrets.access(f"webhook-secret-{connection}")
    assert served.ports.business.get("connections", connection)["register_webhooks"] is False
    assert disconnect(served, provider, connection) == 202
    assert served.ports.business.get("connections", connection)["status"] == "disconnected"


@pytest.mark.parametrize(("body", "code"), [
    ({"github_app": True, "register_webhooks": True}, "oauth.no_webhook_registration"),
    ({"register_webhooks": "yes"}, "input.invalid"),
])
def test_a_request_for_hooks_keyway_cannot_register_is_a_400_and_stores_nothing(
        served, github, monkeypatch, body, code):
    monkeypatch.setenv("KEYWAY_GITHUB_APP_SLUG", "keyway-test")
    monkeypatch.setenv("KEYWAY_GITHUB_APP_ID", "12345")
    response = served.call("POST", "/api/v1/connections", served.token(TENANT, "admin-1", "admin"),
                           json={"provider": "github", **body})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    assert served.ports.business.query("oauth_states") == []


def test_another_tenant_cannot_disconnect_and_the_hooks_and_secret_stay(served, github):
    connection, _ = connect(served, "github")
    pump(served, "github")
    assert disconnect(served, "github", connection, tenant=OTHER) == 404
    assert len(github.hooks.all()) == 2 and github.hooks.deleted == []
    assert secret_of(served, connection)
    assert served.ports.business.get("connections", connection)["status"] == "active"


def test_a_disconnect_naming_another_tenant_reaching_the_vault_changes_nothing(served, github):
    """Past the api: a connection.disconnect that names this connection with another tenant
    (a forged or confused message) deletes no hook, no secret and no token, and leaves the
    connection active."""
    connection, _ = connect(served, "github")
    pump(served, "github")
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("connection-control-github", "api", "connection.disconnect",
                         {"tenant": OTHER, "connection": connection}))
    assert len(github.hooks.all()) == 2 and github.hooks.deleted == []
    assert secret_of(served, connection)
    assert served.ports.business.get("connections", connection)["status"] == "active"
    app_token = served.ports.vault.query("app_tokens")
    assert [s.id for s in app_token] == [connection] or any(
        s.data.get("connection") == connection for s in app_token)
