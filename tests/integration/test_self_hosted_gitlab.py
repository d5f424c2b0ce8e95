"""Acceptance: a self-managed GitLab — the GitLab simulator on a second loopback address with
its own OAuth application, registered as a host — connects, syncs and acts end to end through
the real api, oauth-gitlab, vault-gitlab, fetch-gitlab and act-gitlab entry points. The cloud
client is configured too, and the self-hosted simulator does not know it: every code
exchange, refresh and API call there works only with the host's own client."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests

from keyway.simulators import GitLabSimulator
from keyway.simulators.gitlab import SECOND_USER
from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.integration.test_fetch_flow import deliver

TENANT = "acme"
HOST_APP, HOST_SECRET = "selfhosted-app-id", "selfhosted-app-secret-" + "s" * 20  # noqa: S105
CLOUD_SECRET = "cloud-client-secret-" + "c" * 20  # noqa: S105 - test credentials


@pytest.fixture
def self_hosted(local_stack, monkeypatch, leak_guard):
    leak_guard.track(HOST_SECRET), leak_guard.track(CLOUD_SECRET)
    monkeypatch.setenv("KEYWAY_GITLAB_CLIENT_ID", "cloud-client-id")
    monkeypatch.setenv("KEYWAY_SECRET_GITLAB_CLIENT_SECRET", CLOUD_SECRET)
    sim = GitLabSimulator(host="127.0.0.2", on_issue=leak_guard.track).start()
    sim.register_client(HOST_APP, HOST_SECRET, [redirect_uri("gitlab")])
    sim.seed_activity("acme-group", repos=1, prs=3, issues=2, comments=2)
    yield sim
    sim.stop()


def post(stack, path: str, token: str, body: dict) -> dict:
    response = stack.call("POST", path, token, json=body)
    assert response.status_code in (201, 202), response.get_data(as_text=True)
    return json.loads(response.get_data())


def run_bus(stack, *topics: str) -> None:
    """Deliver what waits on ``topics`` (and what that publishes) until all are quiet."""
    for _ in range(50):
        if not any([deliver(stack.ports, topic) for topic in topics]):
            return
    raise AssertionError("the bus did not settle")


def notes(sim: GitLabSimulator, project: str) -> list[dict]:
    token = sim.mint_token(scopes=("api",)).access_token
    return requests.get(f"{sim.api_url}/projects/{project}/merge_requests/1/notes",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10).json()


def test_a_self_managed_gitlab_connects_syncs_and_acts_with_its_own_client(local_stack,
                                                                          self_hosted):
    stack, sim = local_stack, self_hosted
    admin = stack.token(TENANT, "admin-1", "admin")
    host = post(stack, "/api/v1/hosts", admin, {"provider": "gitlab", "base_url": sim.url,
                                                "client_id": HOST_APP,
                                                "client_secret": HOST_SECRET})
    started = begin(stack, "gitlab", admin, base_url=sim.url)
    assert urlsplit(started["provider_url"]).netloc == urlsplit(sim.url).netloc
    assert query_of(started["provider_url"])["client_id"] == HOST_APP
    done = finish(stack, "gitlab", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["status"] == "connected"
    connection = stack.ports.business.get("connections", started["connection"])
    assert connection["host"] == host["id"] and connection["api_base"] == sim.api_url

    run_bus(stack, "sync-requests-gitlab", "fetch-jobs-gitlab")
    assert len(stack.ports.business.query("pull_requests")) == 3
    [repository] = stack.ports.business.query("repositories")

    member = stack.token(TENANT, "member-1", "member")
    linking = begin(stack, "gitlab", member, "/api/v1/identities", base_url=sim.url)
    linked = finish(stack, "gitlab",
                    authorize(linking["provider_url"] + f"&login={SECOND_USER.login}"))
    assert query_of(linked.headers["Location"])["status"] == "connected"

    action = post(stack, "/api/v1/actions", member, {
        "connection": started["connection"], "kind": "comment", "body": "Ship it",
        "target": {"repository": repository.id, "parent_kind": "pull_request", "number": 1}})
    run_bus(stack, "action-requests-gitlab", "action-jobs-gitlab")
    status = stack.call("GET", f"/api/v1/actions/{action['id']}", member)
    assert json.loads(status.get_data())["status"] == "done"
    [note] = [n for n in notes(sim, repository.data["external_id"]) if "Ship it" in n["body"]]
    assert note["author"]["username"] == SECOND_USER.login


def test_an_unregistered_self_managed_gitlab_is_a_clear_400(local_stack, self_hosted):
    admin = local_stack.token(TENANT, "admin-1", "admin")
    response = local_stack.call("POST", "/api/v1/connections", admin,
                                json={"provider": "gitlab", "base_url": self_hosted.url})
    assert response.status_code == 400
    assert json.loads(response.get_data())["code"] == "oauth.host_not_registered"
    assert self_hosted.requests_log == []


def test_re_authorizing_a_self_hosted_connection_keeps_its_hosts_client(local_stack,
                                                                       self_hosted):
    """The replaced token is refreshed later with the host's client too: the simulator knows
    no other, so a refresh with any other client would turn the connection needs_reauth."""
    stack, sim = local_stack, self_hosted
    admin = stack.token(TENANT, "admin-1", "admin")
    host = post(stack, "/api/v1/hosts", admin, {"provider": "gitlab", "base_url": sim.url,
                                                "client_id": HOST_APP,
                                                "client_secret": HOST_SECRET})
    started = begin(stack, "gitlab", admin, base_url=sim.url)
    finish(stack, "gitlab", authorize(started["provider_url"]))
    connection = started["connection"]
    again = post(stack, f"/api/v1/connections/{connection}/reauthorize", admin, {})
    provider_url = stack.through_start(again["authorize_url"])
    assert query_of(provider_url)["client_id"] == HOST_APP
    done = finish(stack, "gitlab", authorize(provider_url))
    assert query_of(done.headers["Location"])["status"] == "connected"
    record = stack.ports.vault.get("app_tokens", connection)
    assert record["host"] == host["id"]
    assert stack.ports.business.get("connections", connection)["host"] == host["id"]
    stack.ports.vault.put("app_tokens", connection, {**record,  # due for refresh
                                                     "expires_at": "2020-01-01T00:00:00.000000Z"})
    run_bus(stack, "sync-requests-gitlab", "fetch-jobs-gitlab")
    assert stack.ports.business.get("connections", connection)["status"] == "active"
    assert stack.ports.vault.get("app_tokens", connection)["expires_at"] > "2026"
