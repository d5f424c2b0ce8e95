"""The console's pages in-process (no browser): sign-in, CSRF, tenant isolation, the member's
read-only view, the headers every page carries, the result page and the API docs page."""

from __future__ import annotations

import html
import json
import re

import pytest

from shared import ids, policy
from shared.console import session

BASE = "/api/console"
CSP_PARTS = ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
             "frame-ancestors 'self' http://127.0.0.1:8080")


def _csrf(client) -> str:
    cookie = client.get_cookie(session.CSRF)
    assert cookie is not None, "every page sets the CSRF cookie"
    return cookie.value


def _sign_in(stack, tenant="acme", user="alice", role="admin"):
    client = stack.client
    page = client.get(f"{BASE}/login")
    assert page.status_code == 200
    form = {"csrf": _csrf(client), "tenant": tenant, "user": user, "role": role}
    signed = client.post(f"{BASE}/login", data=form)
    assert signed.status_code == 200, signed.get_data(as_text=True)[:400]
    assert f'url={BASE}/connections"' in _assert_page(signed)  # a same-site refresh on
    return signed


def _connection(stack, connection="c-acme", tenant="acme", status="active"):
    stack.ports.business.put("connections", connection, {
        "tenant": tenant, "provider": "github", "kind": "app", "status": status,
        "account": {"login": "octocat"}, "created_at": "2026-12-01T00:00:00Z",
        "next_sync_at": "2026-12-01T00:15:00Z", "interval_seconds": 900})
    return connection


def _assert_page(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    for part in CSP_PARTS:
        assert part in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert re.search(r"<title>[^<]+</title>", text)
    assert "<script>" not in text and "style=" not in text  # nothing inline
    return text


def test_sign_in_sets_a_strict_http_only_cookie_never_shown_in_a_page(local_stack):
    signed = _sign_in(local_stack)
    cookies = signed.headers.getlist("Set-Cookie")
    own = next(c for c in cookies if c.startswith(f"{session.SESSION}="))
    assert "HttpOnly" in own and "SameSite=Strict" in own and "Max-Age=3600" in own
    token = own.split(";")[0].split("=", 1)[1]
    for path in ("/connections", "/connect", "/identities", "/actions", "/subscriptions"):
        text = _assert_page(local_stack.client.get(BASE + path))
        assert token not in text and "eyJ" not in text


def test_sign_in_without_or_with_a_tampered_csrf_token_is_refused(local_stack):
    client = local_stack.client
    client.get(f"{BASE}/login")
    for form in ({"tenant": "acme", "user": "alice", "role": "admin"},
                 {"tenant": "acme", "user": "alice", "role": "admin", "csrf": "x" * 43}):
        refused = client.post(f"{BASE}/login", data=form)
        text = _assert_page(refused, 403)
        assert "console.csrf_failed" in text and "nothing was changed" in text
        assert not any(c.startswith(session.SESSION + "=")
                       for c in refused.headers.getlist("Set-Cookie"))
    assert client.get(f"{BASE}/connections").status_code == 303  # still signed out


def test_pages_need_a_session(local_stack):
    response = local_stack.client.get(f"{BASE}/connections")
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")


def test_a_tampered_disconnect_form_changes_nothing(local_stack):
    _sign_in(local_stack)
    connection = _connection(local_stack)
    before = local_stack.ports.business.get("connections", connection)
    refused = local_stack.client.post(f"{BASE}/connections/{connection}/disconnect",
                                      data={"csrf": "forged-value-of-the-right-length-000"})
    assert "console.csrf_failed" in _assert_page(refused, 403)
    missing = local_stack.client.post(f"{BASE}/connections/{connection}/disconnect",
                                      data={"purge": "true"})
    _assert_page(missing, 403)
    assert local_stack.ports.business.get("connections", connection) == before


def test_another_tenants_connection_is_a_404_page_and_stays_untouched(local_stack):
    _sign_in(local_stack, tenant="acme")
    theirs = _connection(local_stack, "c-globex", tenant="globex")
    before = local_stack.ports.business.get("connections", theirs)
    text = _assert_page(local_stack.client.get(f"{BASE}/connections/{theirs}"), 404)
    assert "no such connection" in text and "octocat" not in text
    posted = local_stack.client.post(f"{BASE}/connections/{theirs}/disconnect",
                                     data={"csrf": _csrf(local_stack.client)})
    _assert_page(posted, 404)
    assert local_stack.ports.business.get("connections", theirs) == before


def test_members_see_no_admin_buttons_and_the_server_refuses_them(local_stack):
    _sign_in(local_stack, user="bob", role="member")
    connection = _connection(local_stack)
    before = local_stack.ports.business.get("connections", connection)
    text = _assert_page(local_stack.client.get(f"{BASE}/connections/{connection}"))
    for button in ("disconnect", "reauthorize", "sync-now"):
        assert f'id="{button}"' not in text
    assert 'id="start-app"' not in _assert_page(local_stack.client.get(f"{BASE}/connect"))
    for operation in ("disconnect", "sync", "reauthorize"):
        refused = local_stack.client.post(f"{BASE}/connections/{connection}/{operation}",
                                          data={"csrf": _csrf(local_stack.client)})
        assert "auth.admin_required" in _assert_page(refused, 403)
    assert local_stack.ports.business.get("connections", connection) == before
    for topic in ("sync-requests-github", "connection-control-github"):
        assert local_stack.ports.bus.peek(policy.subscription_name(topic)) == []
    assert local_stack.ports.business.query("oauth_states") == []


def test_an_admin_disconnects_through_the_page(local_stack):
    _sign_in(local_stack)
    connection = _connection(local_stack)
    text = _assert_page(local_stack.client.get(f"{BASE}/connections/{connection}"))
    assert 'id="disconnect"' in text and "octocat" in text
    done = local_stack.client.post(f"{BASE}/connections/{connection}/disconnect",
                                   data={"csrf": _csrf(local_stack.client)})
    assert done.status_code == 303
    assert local_stack.ports.business.get("connections", connection)["status"] == \
        "disconnecting"
    assert local_stack.ports.bus.peek(policy.subscription_name("connection-control-github"))


def test_a_foreign_origin_post_is_refused(local_stack):
    _sign_in(local_stack)
    connection = _connection(local_stack)
    refused = local_stack.client.post(f"{BASE}/connections/{connection}/disconnect",
                                      data={"csrf": _csrf(local_stack.client)},
                                      headers={"Origin": "https://evil.example"})
    assert "console.foreign_origin" in _assert_page(refused, 403)
    assert local_stack.ports.business.get("connections", connection)["status"] == "active"


def test_connect_result_sends_browsers_to_the_result_page_and_keeps_json(local_stack):
    query = "provider=github&kind=app&status=denied"
    as_json = local_stack.client.get(f"/api/v1/connect-result?{query}")
    assert as_json.json == {"provider": "github", "kind": "app", "status": "denied"}
    browser = local_stack.client.get(f"/api/v1/connect-result?{query}",
                                     headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 303
    assert browser.headers["Location"] == f"{BASE}/connect/result?{query}"
    text = _assert_page(local_stack.client.get(browser.headers["Location"]))
    assert "Access denied" in text and "nothing was stored" in text
    assert "data-target-origin=\"http://127.0.0.1:8080\"" in text


@pytest.mark.parametrize("query", ["", "provider=github&status=weird",
                                   "provider=nope&status=denied"])
def test_a_result_page_without_a_known_outcome_says_so(local_stack, query):
    text = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"), 400)
    assert "outcome of a connect flow" in text and "result.js" not in text


def test_an_error_result_names_its_reason(local_stack):
    text = _assert_page(local_stack.client.get(
        f"{BASE}/connect/result?provider=gitlab&status=error&reason=provider_unavailable"))
    assert "Connection failed" in text and "provider_unavailable" in text
    assert "did not answer" in text


def test_a_signed_out_result_page_refreshes_once_with_only_what_it_understood(local_stack):
    text = _assert_page(local_stack.client.get(
        f"{BASE}/connect/result?provider=github&kind=app&status=connected&connection=c-1"
        "&evil=%22%3E%3Cimg&reason=Not+A+Key"))
    refresh = re.search(r'http-equiv="refresh" content="1;url=([^"]+)"', text).group(1)
    assert refresh.startswith(f"{BASE}/connect/result?") and refresh.endswith("hop=1")
    assert "evil" not in text and "Not+A+Key" not in refresh and "connection=c-1" in refresh
    again = _assert_page(local_stack.client.get(refresh.replace("&amp;", "&")))
    assert 'http-equiv="refresh"' not in again and "connection is made" in again


def test_the_api_docs_page_uses_the_vendored_viewer(local_stack):
    text = _assert_page(local_stack.client.get("/api/docs"))
    assert "/api/docs/vendor/swagger-ui-bundle.js" in text and "https://" not in text
    bundle = local_stack.client.get("/api/docs/vendor/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.get_data()) > 100_000
    assert local_stack.client.get("/api/docs/vendor/..%2Fsecrets.json").status_code == 404
    assert local_stack.client.get("/api/docs/vendor/package.json").status_code == 404


def test_unknown_pages_and_methods_are_plain_pages(local_stack):
    _assert_page(local_stack.client.get(f"{BASE}/nowhere"), 404)
    wrong = local_stack.client.delete(f"{BASE}/login")
    _assert_page(wrong, 405)
    assert wrong.headers["Allow"] == "GET, POST"


def test_a_product_page_signs_its_user_in_with_a_token_from_a_configured_origin(
        local_stack, monkeypatch):
    from shared import bootstrap

    monkeypatch.setenv("KEYWAY_CONSOLE_ORIGINS", "http://127.0.0.1:8080 https://app.example")
    bootstrap.config.cache_clear()
    token = local_stack.token("acme", "alice", "admin")
    refused = local_stack.client.post(f"{BASE}/login", data={"access_token": token},
                                      headers={"Origin": "https://elsewhere.example"})
    assert "console.foreign_origin" in _assert_page(refused, 403)
    no_csrf = local_stack.client.post(f"{BASE}/login", data={"access_token": token})
    assert "console.csrf_failed" in _assert_page(no_csrf, 403)  # keyway's own form: CSRF
    bad = local_stack.client.post(f"{BASE}/login", data={"access_token": token + "x"},
                                  headers={"Origin": "https://app.example"})
    assert "console.sign_in_failed" in _assert_page(bad, 401)
    assert local_stack.client.get(f"{BASE}/connections").status_code == 303
    signed = local_stack.client.post(f"{BASE}/login", data={"access_token": token},
                                     headers={"Origin": "https://app.example"})
    assert token not in _assert_page(signed)
    assert "frame-ancestors 'self' http://127.0.0.1:8080 https://app.example" in \
        signed.headers["Content-Security-Policy"]
    assert local_stack.client.get(f"{BASE}/connections").status_code == 200


def test_the_sandbox_sign_in_is_refused_for_bad_input_and_sets_no_cookie(local_stack):
    client = local_stack.client
    client.get(f"{BASE}/login")
    for form, key in (({"tenant": "acme", "user": "al ice", "role": "admin"},
                       "console.bad_sign_in"),
                      ({"tenant": "acme", "user": "alice", "role": "owner"},
                       "console.bad_sign_in")):
        refused = client.post(f"{BASE}/login", data={**form, "csrf": _csrf(client)})
        assert key in _assert_page(refused, 400)
        assert not any(c.startswith(session.SESSION + "=")
                       for c in refused.headers.getlist("Set-Cookie"))


def test_an_admin_subscribes_and_sees_the_secret_once_members_cannot(local_stack):
    _sign_in(local_stack)
    client = local_stack.client
    made = client.post(f"{BASE}/subscriptions", data={
        "csrf": _csrf(client), "url": "http://127.0.0.1:9/hooks",
        "events": ["sync.failed", "sync.completed"]})
    text = _assert_page(made, 201)
    secret = re.search(r'<code class="secret">([^<]+)</code>', text).group(1)
    assert len(secret) >= 32
    (subscription,) = local_stack.ports.business.query("notification_subscriptions")
    local_stack.ports.business.put("notification_deliveries", "d-1", {
        "subscription": subscription.id, "listed_by": f"{subscription.id} 2026-12-01T00:00:00Z",
        "event_id": "e-1", "type": "sync.failed", "state": "failed",
        "reason": "notify.endpoint_refused", "created_at": "2026-12-01T00:00:00Z",
        "attempts": [{"at": "2026-12-01T00:00:00Z", "status": 500, "error": None}]})
    listed = _assert_page(client.get(f"{BASE}/subscriptions"))
    assert "http://127.0.0.1:9/hooks" in listed and secret not in listed
    assert "sync.failed · <strong>failed</strong> <code>notify.endpoint_refused</code>" in listed
    assert "1 attempt(s), last: 500" in listed
    _sign_in(local_stack, user="bob", role="member")
    listed = _assert_page(client.get(f"{BASE}/subscriptions"))
    assert "http://127.0.0.1:9/hooks" in listed and 'name="url"' not in listed
    refused = client.post(f"{BASE}/subscriptions", data={
        "csrf": _csrf(client), "url": "http://127.0.0.1:9/other", "events": ["sync.failed"]})
    assert "auth.admin_required" in _assert_page(refused, 403)
    assert len(local_stack.ports.business.query("notification_subscriptions")) == 1


def test_a_connection_page_shows_its_last_run_counts_and_freshness(local_stack):
    _sign_in(local_stack)
    connection = _connection(local_stack)
    record = local_stack.ports.business.get("connections", connection)
    local_stack.ports.business.put("connections", connection, {**record, "freshness": {
        "fresh_as_of": {"pull_requests": "2026-12-01T00:10:00Z"}, "never": {}}})
    local_stack.ports.business.put("sync_status", connection, {
        "state": "done", "last_success_at": "2026-12-01T00:10:00Z",
        "last_run": {"lists": {"pulls": {"items": 120, "pages": 2}}}})
    text = _assert_page(local_stack.client.get(f"{BASE}/connections/{connection}"))
    assert "<title>github connection · octocat · keyway</title>" in text
    assert "pulls 120" in text and "built-in method" not in text
    assert "pull_requests 2026-12-01T00:10:00Z" in text


def test_the_connect_page_offers_the_tenants_registered_hosts_only(local_stack):
    admin = local_stack.token("acme", "alice", "admin")
    other = local_stack.token("globex", "gina", "admin")
    for token, url in ((admin, "http://127.0.0.1:9"), (other, "http://127.0.0.1:10")):
        made = local_stack.call("POST", "/api/v1/hosts", token, json={
            "provider": "gitlab", "base_url": url, "client_id": "client-id-1",
            "client_secret": "client-secret-of-this-host"})
        assert made.status_code == 201, made.get_data(as_text=True)
    _sign_in(local_stack)
    text = _assert_page(local_stack.client.get(f"{BASE}/connect"))
    assert '<option value="http://127.0.0.1:9">gitlab: http://127.0.0.1:9</option>' in text
    assert "127.0.0.1:10" not in text and "client-secret-of-this-host" not in text


def _result_data(text):
    return json.loads(html.unescape(re.search(r"data-result='([^']+)'", text).group(1)))


@pytest.mark.parametrize("connection", ["c-globex", "c-missing"])
def test_a_result_naming_a_connection_the_user_cannot_read_is_not_confirmed(local_stack,
                                                                            connection):
    _sign_in(local_stack, tenant="acme")
    _connection(local_stack, "c-globex", tenant="globex")
    text = _assert_page(local_stack.client.get(
        f"{BASE}/connect/result?provider=github&kind=app&status=connected"
        f"&connection={connection}"))
    assert 'data-target-origin="http://127.0.0.1:8080"' in text and "result.js" in text
    assert "octocat" not in text and "connection is made" not in text
    assert "could not confirm" in text
    assert _result_data(text)["status"] == "unconfirmed"
    assert _result_data(text)["confirmed"] is False


def test_a_result_without_a_connection_id_is_not_confirmed(local_stack):
    _sign_in(local_stack)
    text = _assert_page(local_stack.client.get(
        f"{BASE}/connect/result?provider=github&kind=app&status=connected"))
    assert "connection is made" not in text and "first sync" not in text
    assert _result_data(text)["status"] == "unconfirmed"


def test_a_token_without_connections_read_gets_a_result_page_that_confirms_nothing(
        local_stack, monkeypatch):
    from shared import bootstrap

    monkeypatch.setenv("KEYWAY_CONSOLE_ORIGINS", "http://127.0.0.1:8080 https://app.example")
    bootstrap.config.cache_clear()
    connection = _connection(local_stack)
    token = local_stack.token("acme", "alice", "admin", scopes=["data:read"])
    signed = local_stack.client.post(f"{BASE}/login", data={"access_token": token},
                                     headers={"Origin": "https://app.example"})
    _assert_page(signed)
    text = _assert_page(local_stack.client.get(
        f"{BASE}/connect/result?provider=github&kind=app&status=connected"
        f"&connection={connection}"))
    assert "result.js" in text and "octocat" not in text and "connection is made" not in text


def test_a_confirmed_result_names_the_account_and_the_first_sync(local_stack):
    _sign_in(local_stack)
    connection = _connection(local_stack)
    query = f"provider=github&kind=app&status=connected&connection={connection}"
    text = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert "connection is made: account <strong>octocat</strong>" in text
    assert "The first sync has started." in text and "result.js" in text
    assert _result_data(text) == {
        "type": "keyway.connect_result", "provider": "github", "kind": "app",
        "status": "connected", "reason": None, "connection": connection, "identity": None,
        "confirmed": True}
    local_stack.ports.business.put("sync_status", connection, {
        "state": "done", "last_success_at": "2026-12-01T00:10:00Z"})
    again = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert "first sync" not in again and "A sync has been requested." in again  # re-authorize
    record = local_stack.ports.business.get("connections", connection)
    local_stack.ports.business.put("connections", connection, {**record,
                                                               "status": "disconnecting"})
    gone = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert "connection is made" not in gone and _result_data(gone)["status"] == "unconfirmed"


def test_a_personal_result_is_linked_only_when_the_identity_exists(local_stack):
    _sign_in(local_stack)
    query = "provider=github&kind=personal&status=connected&identity=linked"
    text = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert "is linked" not in text and _result_data(text)["status"] == "unconfirmed"
    local_stack.ports.business.put("identities", ids.identity_id("github", "acme", "alice"), {
        "tenant": "acme", "provider": "github", "user": "alice",
        "account": {"login": "hubot"}, "linked_at": "2026-12-01T00:00:00Z"})
    linked = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert "account <strong>hubot</strong> is linked" in linked
    assert _result_data(linked)["confirmed"] is True


def test_a_signed_out_result_reports_the_providers_word_and_posts_it_unconfirmed(local_stack):
    query = "provider=github&kind=app&status=connected&connection=c-1"
    first = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}"))
    assert 'http-equiv="refresh"' in first and "result.js" not in first  # posts after the hop
    text = _assert_page(local_stack.client.get(f"{BASE}/connect/result?{query}&hop=1"))
    assert "GitHub reported that your connection is made" in text and "Sign in" in text
    assert "first sync" not in text and "result.js" in text
    assert _result_data(text)["status"] == "connected"
    assert _result_data(text)["confirmed"] is False


def _set_cookies(response):
    return response.headers.getlist("Set-Cookie")


def test_static_files_carry_no_cookie(local_stack):
    for path in ("/api/console/static/console.css", "/api/console/static/result.js",
                 "/api/docs/vendor/swagger-ui.css", "/api/docs/vendor/nothing.js"):
        response = local_stack.client.get(path)
        assert _set_cookies(response) == [], path
    css = local_stack.client.get("/api/console/static/console.css")
    assert css.status_code == 200 and css.headers["Cache-Control"] == "public, max-age=3600"
    assert local_stack.client.get_cookie(session.CSRF) is None
    assert any(c.startswith(f"{session.CSRF}=")
               for c in _set_cookies(local_stack.client.get(f"{BASE}/login")))


def test_redirects_carry_no_store_and_the_policy(local_stack):
    home = local_stack.client.get(BASE)
    assert home.status_code == 303 and home.headers["Location"].endswith("/login")
    _sign_in(local_stack)
    connection = _connection(local_stack)
    done = local_stack.client.post(f"{BASE}/connections/{connection}/disconnect",
                                   data={"csrf": _csrf(local_stack.client)})
    for response in (home, done):
        assert response.status_code == 303
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'self' http://127.0.0.1:8080" in \
            response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/logout", "/subscriptions", "/connect"])
def test_only_the_sign_in_skips_csrf_for_a_console_origin(local_stack, monkeypatch, path):
    from shared import bootstrap

    monkeypatch.setenv("KEYWAY_CONSOLE_ORIGINS", "http://127.0.0.1:8080 https://app.example")
    bootstrap.config.cache_clear()
    _sign_in(local_stack)
    for origin in ("https://app.example", "null"):
        refused = local_stack.client.post(BASE + path, data={"provider": "github"},
                                          headers={"Origin": origin})
        key = "console.csrf_failed" if origin != "null" else "console.foreign_origin"
        assert key in _assert_page(refused, 403)
    assert local_stack.client.get(f"{BASE}/connections").status_code == 200  # still signed in
    assert local_stack.ports.business.query("oauth_states") == []


def test_signing_out_clears_the_session(local_stack):
    _sign_in(local_stack)
    client = local_stack.client
    out = client.post(f"{BASE}/logout", data={"csrf": _csrf(client)})
    assert out.status_code == 303 and out.headers["Location"].endswith("/login")
    assert out.headers["Cache-Control"] == "no-store"
    cleared = next(c for c in _set_cookies(out) if c.startswith(f"{session.SESSION}="))
    assert "Max-Age=0" in cleared or "Expires=Thu, 01 Jan 1970" in cleared
    after = client.get(f"{BASE}/connections")
    assert after.status_code == 303 and after.headers["Location"].endswith("/login")
