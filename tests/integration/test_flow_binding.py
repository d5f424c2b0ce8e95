"""An OAuth flow completes only in the browser that started it (promise 9, RFC 9700 §4.7).

Each "browser" is its own werkzeug client with its own cookie jar, talking to the real api and
oauth-github functions; the GitHub simulator is the provider. A forwarded link, a missing,
foreign, forged or tampered cookie, a second browser and another user's token are all refused,
with nothing stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from flask import Response
from werkzeug.test import Client

from shared.oauth import flowcookie
from tests.integration.conftest import query_of
from tests.integration.test_connect_flow import TENANT, authorize, begin, vault_records
from tests.integration.test_connect_flow import github as github  # noqa: F401 - fixture

OTHER = "tenant-b"


def browser(stack) -> Client:
    """A second browser: the same stack, its own (empty) cookie jar."""
    return Client(stack.app)


def ask(stack, path: str, token: str) -> dict:
    """The api's answer to starting a flow (nothing done in any browser yet)."""
    response = stack.call("POST", path, token, json={"provider": "github"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return json.loads(response.get_data())


def start_path(started: dict) -> str:
    parts = urlsplit(started["authorize_url"])
    return f"{parts.path}?{parts.query}"


def finish_in(client: Client, callback_url: str):
    return client.get("/oauth-github/callback?" + callback_url.split("?", 1)[1])


def flow_cookies(client: Client) -> dict[str, str]:
    return {c.key: c.value for c in client._cookies.values() if "keyway-flow-" in c.key}


def nothing_linked(stack) -> bool:
    return (vault_records(stack) == 0 and stack.ports.business.query("identities") == []
            and stack.ports.business.query("connections") == [])


def refused_page(response, status: int, key: str) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == status and response.mimetype == "text/html", page[:300]
    assert key in page and "<script" not in page
    assert response.headers["Cache-Control"] == "no-store"
    return page


def test_a_forwarded_identity_link_finished_in_another_members_browser_links_nothing(
        local_stack, github, caplog):
    mallory = local_stack.token(TENANT, "mallory", "member")
    started = ask(local_stack, "/api/v1/identities", mallory)
    provider_url = local_stack.through_start(started["authorize_url"], mallory)  # her browser
    colleague = browser(local_stack)  # she sends the provider URL on; he consents
    done = finish_in(colleague, authorize(provider_url))
    refused_page(done, 400, "oauth.flow_not_bound")
    assert nothing_linked(local_stack)
    assert "oauth.flow_not_bound" in [r.getMessage() for r in caplog.records]
    again = finish_in(local_stack.client, authorize(provider_url))  # that attempt used it up
    assert again.status_code == 400 and nothing_linked(local_stack)


def test_a_forwarded_identity_start_url_cannot_be_opened_by_a_colleague(local_stack, github):
    started = ask(local_stack, "/api/v1/identities", local_stack.token(TENANT, "mallory",
                                                                      "member"))
    colleague = browser(local_stack)
    form = colleague.get(start_path(started))
    assert form.status_code == 200 and 'name="access_token"' in form.get_data(as_text=True)
    bob = local_stack.token(TENANT, "bob", "member")
    posted = colleague.post(urlsplit(started["authorize_url"]).path, data={
        "state": query_of(started["authorize_url"])["state"], "access_token": bob})
    page = refused_page(posted, 403, "oauth.start_wrong_user")
    assert bob not in page and flow_cookies(colleague) == {}
    assert [s.data["binding"] for s in local_stack.ports.business.query("oauth_states")] == [None]


@pytest.mark.parametrize("who", ["another user", "another tenant", "the tenant's admin",
                                 "a forged token", "no token"])
def test_a_personal_start_needs_the_very_user_who_asked(local_stack, github, who):
    started = ask(local_stack, "/api/v1/identities", local_stack.token(TENANT, "m-1", "member"))
    token = {"another user": lambda: local_stack.token(TENANT, "m-2", "member"),
             "another tenant": lambda: local_stack.token(OTHER, "m-1", "member"),
             "the tenant's admin": lambda: local_stack.token(TENANT, "admin-1", "admin"),
             "a forged token": lambda: local_stack.token(TENANT, "m-1", "member")[:-4] + "AAAA",
             "no token": lambda: ""}[who]()
    posted = local_stack.client.post(urlsplit(started["authorize_url"]).path, data={
        "state": query_of(started["authorize_url"])["state"], "access_token": token})
    key = "oauth.start_wrong_user" if who.startswith("another") or "admin" in who \
        else "oauth.start_unauthenticated"
    refused_page(posted, 403, key)
    assert "Set-Cookie" not in posted.headers and "Location" not in posted.headers
    assert [s.data["binding"] for s in local_stack.ports.business.query("oauth_states")] == [None]


def test_a_callback_without_the_flow_cookie_is_refused_and_stores_nothing(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    done = finish_in(browser(local_stack), authorize(started["provider_url"]))
    refused_page(done, 400, "oauth.flow_not_bound")
    assert nothing_linked(local_stack) and local_stack.ports.business.query("oauth_states") == []


def test_the_cookie_of_another_flow_is_refused(local_stack, github):
    admin = local_stack.token(TENANT, "admin-1", "admin")
    first, second = browser(local_stack), browser(local_stack)
    mine = ask(local_stack, "/api/v1/connections", admin)
    theirs = ask(local_stack, "/api/v1/connections", admin)
    assert first.get(start_path(mine)).status_code == 302
    to_provider = second.get(start_path(theirs)).headers["Location"]
    [(_, value)] = flow_cookies(first).items()  # my flow's secret, under their flow's name
    [(name, _)] = flow_cookies(second).items()
    third = browser(local_stack)
    third.set_cookie(name, value)
    refused_page(finish_in(third, authorize(to_provider)), 400, "oauth.flow_not_bound")
    refused_page(finish_in(first, authorize(to_provider)), 400, "oauth.invalid_state")
    assert nothing_linked(local_stack)


@pytest.mark.parametrize("forge", ["random", "tampered", "empty", "oversized"])
def test_a_forged_or_tampered_cookie_is_refused(local_stack, github, forge):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    [(name, value)] = flow_cookies(local_stack.client).items()
    forged = {"random": flowcookie.new_secret(), "empty": "", "oversized": value * 5,
              "tampered": value[:-1] + ("A" if value[-1] != "A" else "B")}[forge]
    attacker = browser(local_stack)
    attacker.set_cookie(name, forged)
    refused_page(finish_in(attacker, authorize(started["provider_url"])), 400,
                 "oauth.flow_not_bound")
    assert nothing_linked(local_stack)


def test_a_second_browser_on_the_same_start_url_is_refused(local_stack, github):
    started = ask(local_stack, "/api/v1/connections",
                  local_stack.token(TENANT, "admin-1", "admin"))
    first, second = browser(local_stack), browser(local_stack)
    to_provider = first.get(start_path(started)).headers["Location"]
    bound = local_stack.ports.business.query("oauth_states")[0].data["binding"]
    late = second.get(start_path(started))
    refused_page(late, 409, "oauth.flow_already_bound")
    assert "Set-Cookie" not in late.headers and flow_cookies(second) == {}
    assert local_stack.ports.business.query("oauth_states")[0].data["binding"] == bound
    again = first.get(start_path(started))  # the browser that started it may come back
    assert again.status_code == 302 and again.headers["Location"] == to_provider
    refused_page(finish_in(second, authorize(to_provider)), 400, "oauth.flow_not_bound")
    assert nothing_linked(local_stack)


def test_flows_run_in_parallel_in_one_browser(local_stack, github):
    """Two flows started in one browser, finished in the other order, each by its own account
    (one account connects once per tenant)."""
    from keyway.simulators.oauth_model import Account

    admin = local_stack.token(TENANT, "admin-1", "admin")
    one, two = (begin(local_stack, "github", admin) for _ in range(2))
    assert len(flow_cookies(local_stack.client)) == 2
    for started, who in ((two, None), (one, Account("hubot", 4242, "Hubot"))):
        if who is not None:
            github.oauth.set_account(who)
        done = finish_in(local_stack.client, authorize(started["provider_url"]))
        assert query_of(done.headers["Location"])["status"] == "connected"
    assert flow_cookies(local_stack.client) == {}  # each callback expires its own cookie


def test_an_identity_link_completes_in_the_browser_of_its_user(local_stack, github):
    member = local_stack.token(TENANT, "m-1", "member")
    started = ask(local_stack, "/api/v1/identities", member)
    form = local_stack.client.get(start_path(started))
    page = form.get_data(as_text=True)
    assert form.status_code == 200 and '<form method="post"' in page
    assert 'name="state"' in page and 'name="access_token"' in page and "<script" not in page
    csp = form.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert form.headers["X-Frame-Options"] == "DENY"
    # its referrer (the URL holds the state) goes to keyway's own origin only; under
    # no-referrer a browser would send the post with Origin: null, refused as foreign
    assert form.headers["Referrer-Policy"] == "same-origin"
    assert '<meta name="referrer" content="same-origin">' in page
    assert form.headers["Cache-Control"] == "no-store" and flow_cookies(local_stack.client) == {}
    provider_url = local_stack.through_start(started["authorize_url"], member)
    done = finish_in(local_stack.client, authorize(provider_url))
    assert query_of(done.headers["Location"])["identity"] == "linked"


def test_an_admin_may_post_the_start_form_but_only_as_themselves(local_stack, github):
    admin = local_stack.token(TENANT, "admin-1", "admin")
    started = ask(local_stack, "/api/v1/connections", admin)
    path, state = urlsplit(started["authorize_url"]).path, query_of(started["authorize_url"])
    other = local_stack.token(TENANT, "admin-2", "admin")
    refused_page(local_stack.client.post(path, data={**state, "access_token": other}), 403,
                 "oauth.start_wrong_user")
    posted = local_stack.client.post(path, data={**state, "access_token": admin})
    assert posted.status_code == 302 and len(flow_cookies(local_stack.client)) == 1


def test_another_site_cannot_post_its_token_into_the_start_form(local_stack, github):
    mallory = local_stack.token(TENANT, "mallory", "member")
    started = ask(local_stack, "/api/v1/identities", mallory)
    victim = browser(local_stack)
    posted = victim.post(urlsplit(started["authorize_url"]).path,
                         headers={"Origin": "https://evil.example"},
                         data={**query_of(started["authorize_url"]), "access_token": mallory})
    refused_page(posted, 403, "oauth.start_foreign_origin")
    assert "form-action 'none'" in posted.headers["Content-Security-Policy"]
    assert flow_cookies(victim) == {}


def test_an_access_token_in_the_start_url_is_refused(local_stack, github):
    member = local_stack.token(TENANT, "m-1", "member")
    started = ask(local_stack, "/api/v1/identities", member)
    answer = local_stack.client.get(f"{start_path(started)}&access_token={member}")
    assert member not in refused_page(answer, 400, "oauth.token_in_url")


def test_an_expired_start_url_is_refused_with_a_page(local_stack, github):
    started = ask(local_stack, "/api/v1/connections",
                  local_stack.token(TENANT, "admin-1", "admin"))
    for snap in local_stack.ports.business.query("oauth_states"):
        local_stack.ports.business.put("oauth_states", snap.id,
                                       {**snap.data, "expires_at": "2020-01-01T00:00:00.000000Z"})
    refused_page(local_stack.client.get(start_path(started)), 400, "oauth.invalid_state")
    assert flow_cookies(local_stack.client) == {}


def test_the_flow_cookie_is_http_only_same_site_lax_and_lives_as_long_as_the_state(
        local_stack, github):
    started = ask(local_stack, "/api/v1/connections",
                  local_stack.token(TENANT, "admin-1", "admin"))
    answer = local_stack.client.get(start_path(started))
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("keyway-flow-") and "Secure" not in cookie  # local http mode
    for part in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"):
        assert part in cookie
    assert "Domain" not in cookie and answer.headers["Referrer-Policy"] == "no-referrer"


def test_over_https_the_flow_cookie_is_a_secure_host_cookie(local_stack):
    config = replace(local_stack.config, public_url="https://keyway.example")
    response = Response()
    flowcookie.set_cookie(config, response, "a-state-value", flowcookie.new_secret(), {})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-keyway-flow-") and "; Secure" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie


def test_a_browser_keeps_at_most_a_few_flow_cookies(local_stack):
    held = {flowcookie.name(local_stack.config, f"state-{n}"): "x" for n in range(
        flowcookie.MAX_PARALLEL)}
    response = Response()
    flowcookie.set_cookie(local_stack.config, response, "state-new", "secret", held)
    expired = [c for c in response.headers.getlist("Set-Cookie") if "Max-Age=0" in c]
    assert len(expired) == flowcookie.MAX_PARALLEL


def test_no_token_state_or_cookie_value_is_logged(local_stack, github, leak_guard, caplog):
    caplog.set_level(logging.DEBUG)
    member = local_stack.token(TENANT, "m-1", "member")
    started = ask(local_stack, "/api/v1/identities", member)
    leak_guard.track(query_of(started["authorize_url"])["state"])
    path = urlsplit(started["authorize_url"]).path
    local_stack.client.post(path, data={**query_of(started["authorize_url"]),
                                        "access_token": local_stack.token(TENANT, "m-2",
                                                                          "member")})
    provider_url = local_stack.through_start(started["authorize_url"], member)
    [(_, value)] = flow_cookies(local_stack.client).items()
    leak_guard.track(value)
    finish_in(browser(local_stack), authorize(provider_url))
    keys = [r.getMessage() for r in caplog.records]
    assert {"oauth.start_wrong_user", "oauth.flow_bound", "oauth.flow_not_bound"} <= set(keys)


def test_a_flow_stored_without_its_provider_url_is_refused_at_the_start(local_stack, github):
    started = ask(local_stack, "/api/v1/connections",
                  local_stack.token(TENANT, "admin-1", "admin"))
    for snap in local_stack.ports.business.query("oauth_states"):
        local_stack.ports.business.put("oauth_states", snap.id, {**snap.data, "provider_url": ""})
    refused_page(local_stack.client.get(start_path(started)), 400, "oauth.invalid_state")
    assert [s.data["binding"] for s in local_stack.ports.business.query("oauth_states")] == [None]
