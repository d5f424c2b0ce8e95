"""Promise 9 in the connect flow: a token endpoint that answers the code exchange with a
redirect gets nothing re-sent — the callback ends with ``provider.redirect_refused``, the
``Location`` is never contacted and nothing is stored."""

from __future__ import annotations

from tests.fakes.egress_servers import Recorder
from tests.integration.conftest import query_of
from tests.integration.test_connect_flow import (
    TENANT,
    authorize,
    begin,
    finish,
    github,  # noqa: F401 - a fixture
    vault_records,
)


def test_a_redirected_code_exchange_stores_nothing_and_never_reaches_the_location(
        local_stack, github, monkeypatch, leak_guard):  # noqa: F811
    leak_guard.track("gh-client-secret-1")
    location = Recorder().start()
    provider = Recorder(status=307, location=f"{location.url}/steal").start()
    try:
        started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
        callback_url = authorize(started["provider_url"])
        leak_guard.track(query_of(callback_url)["code"])
        monkeypatch.setenv("KEYWAY_GITHUB_OAUTH_URL", provider.url)  # now it redirects
        response = finish(local_stack, "github", callback_url)
    finally:
        provider.stop(), location.stop()
    result = query_of(response.headers["Location"])
    assert response.status_code == 302 and result["status"] == "error"
    assert result["reason"] == "provider.redirect_refused"
    assert len(provider.requests) == 1 and location.requests == []
    assert vault_records(local_stack) == 0
    assert local_stack.ports.business.get("connections", started["connection"]) is None
