"""Connecting Bitbucket Cloud: the authorization-code flow through the real api and
oauth-bitbucket functions against the simulator (HTTP Basic at the token endpoint, no PKCE, the
account's uuid recorded), a member linking an identity, and the refusals storing nothing."""

from __future__ import annotations

import pytest

from keyway.simulators import BitbucketSimulator
from shared import policy
from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish, vault_records

TENANT = "tenant-a"
SCOPES = "account pullrequest issue"  # app tokens ask to read
PERSONAL = "account pullrequest issue:write"  # commenting on an issue needs issue:write


@pytest.fixture
def bitbucket(local_stack, monkeypatch, leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    secret = leak_guard.track("bb-consumer-secret-1")
    sim.register_client("bb-key", secret, [redirect_uri("bitbucket")])
    local_stack.provider_config(monkeypatch, "bitbucket", "bb-key", secret, sim.oauth_url,
                                sim.api_url)
    yield sim
    sim.stop()


def connect(stack, tenant: str = TENANT, user: str = "admin-1"):
    started = begin(stack, "bitbucket", stack.token(tenant, user, "admin"))
    return started, finish(stack, "bitbucket", authorize(started["provider_url"]))


def test_an_admin_connects_bitbucket_end_to_end(local_stack, bitbucket):
    started, done = connect(local_stack)
    params = query_of(started["provider_url"])
    assert started["provider_url"].startswith(bitbucket.oauth_url + "/site/oauth2/authorize?")
    assert params["scope"] == SCOPES and params["response_type"] == "code"
    assert "code_challenge" not in params  # Bitbucket Cloud offers no PKCE
    assert done.status_code == 302
    result = query_of(done.headers["Location"])
    assert result["status"] == "connected" and result["connection"] == started["connection"]
    record = local_stack.ports.vault.get("app_tokens", started["connection"])
    assert isinstance(record["access_token"], bytes) and record["tenant"] == TENANT
    connection = local_stack.ports.business.get("connections", started["connection"])
    me = bitbucket.user_json_fields()
    assert connection["account"] == {"id": me["uuid"], "login": "evzijst"}
    assert connection["api_base"] == bitbucket.api_url
    exchange = [r for r in bitbucket.requests_log if r.template == "/site/oauth2/access_token"]
    assert [(r.status, r.headers.get("authorization")) for r in exchange] == [(200, "Basic")]
    got: list = []
    local_stack.ports.bus.pull(policy.subscription_name("sync-requests-bitbucket"), got.append)
    assert [m.attributes["sender"] for m in got] == ["oauth-bitbucket"]


def test_a_member_links_their_own_bitbucket_identity(local_stack, bitbucket):
    token = local_stack.token(TENANT, "member-7", "member")
    started = begin(local_stack, "bitbucket", token, "/api/v1/identities")
    assert query_of(started["provider_url"])["scope"] == PERSONAL
    done = finish(local_stack, "bitbucket", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["identity"] == "linked"
    assert local_stack.ports.vault.get("personal_tokens", f"bitbucket:{TENANT}:member-7")
    identity = local_stack.ports.business.get("identities", f"bitbucket:{TENANT}:member-7")
    assert identity["account"]["id"] == bitbucket.user_json_fields()["uuid"]


def test_a_wrong_consumer_secret_stores_nothing(local_stack, bitbucket, monkeypatch):
    monkeypatch.setenv("KEYWAY_SECRET_BITBUCKET_CLIENT_SECRET", "not-the-consumer-secret")
    started, done = connect(local_stack)
    assert query_of(done.headers["Location"])["status"] == "error"
    assert vault_records(local_stack) == 0
    assert local_stack.ports.business.get("connections", started["connection"]) is None


def test_a_replayed_bitbucket_code_is_refused_and_stores_nothing_more(local_stack, bitbucket):
    started = begin(local_stack, "bitbucket", local_stack.token(TENANT, "admin-1", "admin"))
    callback = authorize(started["provider_url"])
    assert query_of(finish(local_stack, "bitbucket", callback).headers["Location"])[
        "status"] == "connected"
    before = vault_records(local_stack)
    again = finish(local_stack, "bitbucket", callback)  # the state is single-use
    assert again.status_code == 400 and vault_records(local_stack) == before


def test_access_denied_on_bitbucket_returns_to_the_frontend_and_stores_nothing(
        local_stack, bitbucket):
    bitbucket.set_consent(False)
    started, done = connect(local_stack)
    assert query_of(done.headers["Location"])["status"] == "denied"
    assert vault_records(local_stack) == 0


def test_no_bitbucket_token_appears_in_any_url_of_the_flow(local_stack, bitbucket):
    started, done = connect(local_stack)
    issued = list(bitbucket.access_tokens)
    assert issued
    for url in (started["provider_url"], done.headers["Location"]):
        assert not any(token in url for token in issued)
