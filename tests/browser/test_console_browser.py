"""The console in a real browser against `make run`'s embedded stack: an admin connects each
of the four sandbox providers through the pages and the simulators' sign-in pages, sees the
records appear, a member links an identity and comments under it, a popup posts its result to
the opener, a denied consent and a tampered form show clear pages and change nothing, the
admin disconnects. Every page: a title, labels on inputs, no horizontal overflow at 400 px, no
token in its HTML, no Content-Security-Policy violation; a screenshot of each goes to
``tests/artifacts/``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.browser.conftest import ARTIFACTS, ROOT, WIDTH

PROVIDERS = ("github", "gitlab", "bitbucket", "jira")
_shots: list[str] = []


def _by(kind: str):
    from selenium.webdriver.common.by import By

    return {"css": By.CSS_SELECTOR, "link": By.PARTIAL_LINK_TEXT, "id": By.ID}[kind]


_current: list = []


def _wait(condition, timeout: float = 60, what: str = "condition"):
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except WebDriverException:  # stale or missing while the page is replaced: look again
            value = None
        if value:
            return value
        time.sleep(0.3)
    seen = ""
    if _current:
        browser = _current[0]
        seen = f" (at {browser.current_url}: {browser.title!r}, {browser.page_source[-600:]})"
    pytest.fail(f"timed out waiting for {what}{seen}")


def _check_page(browser, stack, name: str) -> str:
    """The basics every console page holds (see the module docstring); returns its HTML."""
    html = browser.page_source
    assert browser.title.strip(), f"{name}: no <title>: {html[:1500]}"
    labels = browser.execute_script("""
        return Array.from(document.querySelectorAll('input, select, textarea'))
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.name);""")
    assert labels == [], f"{name}: inputs without a label: {labels}"
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{name}: {width} px wide at a {WIDTH} px window"
    session = browser.get_cookie("keyway-console")
    if session:
        assert session["value"] not in html, f"{name}: the session token is in the page"
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ", html), f"{name}: a JWT in the page"
    violations = [e["message"] for e in browser.get_log("browser")
                  if "Content Security Policy" in e["message"]]
    assert violations == [], f"{name}: {violations}"
    _shots.append(name)
    browser.save_screenshot(str(ARTIFACTS / f"{len(_shots):02d}-{name}.png"))
    return html


def _sign_in(browser, stack, user: str, role: str) -> None:
    _current[:] = [browser]
    browser.delete_all_cookies()
    browser.get(f"{stack.base}/api/console/login")
    _check_page(browser, stack, "login")
    field = browser.find_element(_by("id"), "user")
    field.clear()
    field.send_keys(user)
    browser.find_element(_by("css"), f"#role option[value={role}]").click()
    browser.find_element(_by("id"), "sign-in").click()
    _wait(lambda: "/console/connections" in browser.current_url, 15, "the connections page")
    cookie = browser.get_cookie("keyway-console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def _start(browser, stack, provider: str, kind: str) -> None:
    browser.get(f"{stack.base}/api/console/connect")
    _check_page(browser, stack, f"connect-{kind}")
    browser.find_element(_by("css"), f"#provider-{kind} option[value={provider}]").click()
    browser.find_element(_by("id"), f"start-{kind}").click()
    _wait(lambda: browser.title == "Sign in", what=f"{provider}'s sign-in page")


def _choose_account(browser, stack, provider: str, login: str | None = None) -> str:
    chosen = _wait(lambda: next((a for a in browser.find_elements(_by("css"), "a")
                                 if login is None or f"({login})" in a.text), None),
                   what=f"the account link for {login or 'the first account'}")
    chosen.click()
    _wait(lambda: "/console/connect/result" in browser.current_url, what="the result page")
    return _check_page(browser, stack, f"result-{provider}")


def _connections(stack, tenant: str = "acme") -> dict[str, dict]:
    return {s.id: s.data for s in stack.store().query("connections")
            if s.data.get("tenant") == tenant}


def test_an_admin_connects_all_four_providers_and_sees_their_records(browser, stack):
    _sign_in(browser, stack, "alice", "admin")
    _check_page(browser, stack, "connections-empty")
    for provider in PROVIDERS:
        before = set(_connections(stack))
        _start(browser, stack, provider, "app")
        html = _choose_account(browser, stack, provider)
        assert "connection is made" in html and "account <strong>" in html, html[-800:]
        (made,) = set(_connections(stack)) - before
        assert _connections(stack)[made]["provider"] == provider
    store = stack.store()
    for connection, record in _connections(stack).items():
        _wait(lambda c=connection: (store.get("sync_status", c) or {}).get("state") == "done",
              timeout=120, what=f"the first sync of {record['provider']}")
        browser.get(f"{stack.base}/api/console/connections/{connection}")
        html = _check_page(browser, stack, f"connection-{record['provider']}")
        repositories = [s for s in store.query("repositories")
                        if s.data["connection"] == connection]
        assert repositories and f"Repositories ({len(repositories)})" in html
        assert 'id="sync-state">done<' in html and 'id="disconnect"' in html
    browser.get(f"{stack.base}/api/console/connections")
    html = _check_page(browser, stack, "connections")
    assert html.count('class="card connection"') == 4 and html.count("health-active") == 4


def test_a_popup_posts_its_result_to_the_opener_then_closes(browser, stack):
    origin = stack.base
    browser.get(f"{stack.base}/api/console/connections")
    opener = browser.current_window_handle
    browser.execute_script(
        "window.__results = [];"
        "window.addEventListener('message', e => window.__results.push("
        "{origin: e.origin, data: e.data}));"
        "window.open(arguments[0], 'keyway-connect', 'width=400,height=700');",
        f"{stack.base}/api/console/connect?opener={origin}")
    popup = _wait(lambda: [h for h in browser.window_handles if h != opener], what="the popup")[0]
    browser.switch_to.window(popup)
    _wait(lambda: browser.find_elements(_by("id"), "start-personal"), what="the connect page")
    browser.find_element(_by("css"), "#provider-personal option[value=gitlab]").click()
    browser.find_element(_by("id"), "start-personal").click()
    _wait(lambda: browser.title == "Sign in", what="gitlab's sign-in page")
    browser.find_elements(_by("css"), "a")[0].click()
    _wait(lambda: popup not in browser.window_handles, what="the popup to close")
    browser.switch_to.window(opener)
    results = _wait(lambda: browser.execute_script("return window.__results"),
                    what="the popup's message")
    assert results == [{"origin": origin, "data": {
        "type": "keyway.connect_result", "provider": "gitlab", "kind": "personal",
        "status": "connected", "reason": None, "connection": None, "identity": "linked",
        "confirmed": True}}]


def test_a_denied_consent_shows_a_clear_page_and_stores_nothing(browser, stack):
    before = _connections(stack)
    _start(browser, stack, "gitlab", "app")
    query = parse_qs(urlsplit(browser.current_url).query)
    # what the provider does when the user clicks "Deny": back to the callback with an error
    browser.get(f"{query['redirect_uri'][0]}?error=access_denied&state={query['state'][0]}")
    _wait(lambda: "/console/connect/result" in browser.current_url, what="the result page")
    html = _check_page(browser, stack, "result-denied")
    assert "Access denied" in browser.title and "nothing was stored" in html
    assert _connections(stack) == before


def test_a_tampered_form_shows_a_clear_page_and_changes_nothing(browser, stack):
    connection = next(c for c, r in _connections(stack).items() if r["provider"] == "jira")
    browser.get(f"{stack.base}/api/console/connections/{connection}")
    before = stack.store().get("connections", connection)
    browser.execute_script(
        "document.querySelector('#disconnect').form.elements.csrf.value = 'tampered-' + "
        "'x'.repeat(40);")
    browser.find_element(_by("id"), "disconnect").click()
    _wait(lambda: "could not be accepted" in browser.title, what="the refusal page")
    html = _check_page(browser, stack, "refused-csrf")
    assert "console.csrf_failed" in html and "nothing was changed" in html
    assert stack.store().get("connections", connection) == before
    browser.get(f"{stack.base}/api/console/connections/c-someone-elses")
    assert "no such connection" in _check_page(browser, stack, "not-found")


def test_a_member_links_an_identity_and_comments_under_it(browser, stack):
    store = stack.store()
    github = next(c for c, r in _connections(stack).items() if r["provider"] == "github")
    _sign_in(browser, stack, "bob", "member")
    _start(browser, stack, "github", "personal")
    html = _choose_account(browser, stack, "github-identity", "hubot")
    assert "is linked" in html and "<strong>hubot</strong>" in html
    browser.get(f"{stack.base}/api/console/identities")
    assert "hubot" in _check_page(browser, stack, "identities")
    browser.get(f"{stack.base}/api/console/connections/{github}")
    html = _check_page(browser, stack, "connection-as-member")
    assert 'id="disconnect"' not in html and 'id="reauthorize"' not in html
    public = next(s for s in store.query("repositories")
                  if s.data["connection"] == github and not s.data["private"])
    pull = next(s for s in store.query("pull_requests") if s.data["repository"] == public.id)
    browser.find_element(_by("css"), f"#repository option[value='{public.id}']").click()
    browser.find_element(_by("id"), "number").send_keys(str(pull.data["number"]))
    browser.find_element(_by("id"), "body").send_keys("Posted from the console")
    browser.find_element(_by("id"), "post-comment").click()
    _wait(lambda: "/console/actions" in browser.current_url, what="the actions page")

    def done() -> bool:
        browser.refresh()
        return 'data-status="done"' in browser.page_source

    _wait(done, timeout=60, what="the comment to be posted")
    _check_page(browser, stack, "actions")
    posted = [s.data for s in store.query("comments") if s.data["connection"] == github
              and s.data["body"].startswith("Posted from the console")]
    assert [c["author"]["login"] for c in posted] == ["hubot"]


def test_the_api_docs_render_under_the_strict_policy(browser, stack):
    browser.get(f"{stack.base}/api/docs")
    _wait(lambda: browser.find_elements(_by("css"), ".opblock"), what="Swagger UI's operations")
    _check_page(browser, stack, "api-docs")
    policy = requests.get(f"{stack.base}/api/docs", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy


def test_an_admin_reauthorizes_in_place_then_disconnects(browser, stack):
    _sign_in(browser, stack, "alice", "admin")
    github = next(c for c, r in _connections(stack).items() if r["provider"] == "github")
    before = set(_connections(stack))
    browser.get(f"{stack.base}/api/console/connections/{github}")
    browser.find_element(_by("id"), "reauthorize").click()
    _wait(lambda: browser.title == "Sign in", what="github's sign-in page")
    html = _choose_account(browser, stack, "github-reauthorized", "octocat")
    assert "connection is made" in html and "<strong>octocat</strong>" in html
    assert f"/console/connections/{github}" in html and set(_connections(stack)) == before
    browser.get(f"{stack.base}/api/console/subscriptions")
    _check_page(browser, stack, "subscriptions-empty")
    browser.find_element(_by("id"), "url").send_keys(f"{stack.base}/nowhere/hooks")
    browser.find_element(_by("css"), "input[value='sync.completed']").click()
    browser.find_element(_by("id"), "subscribe").click()
    _wait(lambda: browser.find_elements(_by("id"), "made"), what="the new subscription")
    assert "/nowhere/hooks" in _check_page(browser, stack, "subscribed")
    connection = next(c for c, r in _connections(stack).items() if r["provider"] == "bitbucket")
    browser.get(f"{stack.base}/api/console/connections/{connection}")
    browser.find_element(_by("id"), "disconnect").click()
    _wait(lambda: "disconnect" in (browser.find_element(_by("id"), "status").text),
          what="the disconnecting status")
    _check_page(browser, stack, "disconnected")
    assert stack.store().get("connections", connection)["status"] in ("disconnecting",
                                                                       "disconnected")


def test_the_identity_link_form_takes_a_token_pasted_in_a_real_browser(browser, stack):
    """The start step's own form (what a product without the console links to): a member
    pastes their access token and goes on to the provider. Chromium sends ``Origin: null``
    on a post from a page whose referrer policy is ``no-referrer``, which the start step
    refuses as a foreign origin, so the form's page must send its referrer to keyway itself."""
    env = {**os.environ, "KEYWAY_STATE_DIR": str(stack.state), "PYTHONPATH": str(ROOT)}
    for name in ("KEYWAY_PUBLIC_URL", "KEYWAY_FRONTEND_URL"):
        env.pop(name, None)
    token = subprocess.run([sys.executable, "-m", "keyway", "dev", "token", "--tenant", "acme",
                            "--user", "carol", "--role", "member"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    started = requests.post(f"{stack.base}/api/v1/identities", json={"provider": "gitlab"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert started.status_code in (200, 201, 202), started.text
    browser.delete_all_cookies()
    browser.get(started.json()["authorize_url"])
    _wait(lambda: browser.find_elements(_by("css"), "input[name=access_token]"),
          what="the start step's sign-in form")
    browser.save_screenshot(str(ARTIFACTS / "oauth-start-form.png"))
    assert token not in browser.page_source
    browser.find_element(_by("css"), "input[name=access_token]").send_keys(token)
    browser.find_element(_by("css"), "form button[type=submit]").click()
    _wait(lambda: browser.title == "Sign in" or "start_foreign_origin" in browser.page_source,
          what="the provider's sign-in page or a refusal")
    assert "start_foreign_origin" not in browser.page_source, browser.page_source[:500]
    assert browser.title == "Sign in"
