"""The leak guard catches what it promises to, and says where without printing the secret.

Inner test files run in-process with ``pytester``; the secret reaches them through the
environment so it never appears in their source (which pytest prints in tracebacks).
"""

from __future__ import annotations

import base64
import secrets

import pytest

from tests.leakguard import LeakDetected, LeakGuard, fingerprint, secret_forms

pytest_plugins = ["pytester"]

CONFTEST = """
import os

import pytest

from tests.leakguard import leak_guard, pytest_runtest_makereport  # noqa: F401


@pytest.fixture
def token(leak_guard):
    return leak_guard.track(os.environ["LEAK_TOKEN"])


@pytest.fixture
def issued_token(token):
    '''A fixture that depends on the guard only indirectly.'''
    return token
"""

HEADER = "import logging, os, sys\n\nimport pytest\n\n"


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str,
         token: str | None = None) -> tuple[pytest.RunResult, str, str]:
    """Run one inner test file; return the result, its whole output and the token."""
    token = token or "opaque-" + secrets.token_hex(16)
    monkeypatch.setenv("LEAK_TOKEN", token)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=HEADER + body)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rA")
    output = result.stdout.str() + result.stderr.str()
    for form in secret_forms(token):
        assert form not in output, "the guard's own report printed the secret"
    return result, output, token


def _assert_leak(result: pytest.RunResult, output: str, token: str, where: str,
                 **outcomes: int) -> None:
    result.assert_outcomes(**(outcomes or {"failed": 1}))
    assert "leak guard: a tracked secret leaked" in output
    assert f"secret {fingerprint(token)} in {where}" in output


def test_a_clean_test_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, output, _ = _run(pytester, monkeypatch, """
def test_clean(token, leak_guard):
    logging.getLogger("app").warning("released a token for %s", "c-1")
    print("synced 3 pull requests")
    leak_guard.check_text("body", '{"ok": true}')
""")
    result.assert_outcomes(passed=1)
    assert "leak guard" not in output


def test_a_secret_in_a_log_line_fails_the_test(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    result, output, token = _run(pytester, monkeypatch, """
def test_leaks(token):
    logging.getLogger("app.vault").info("refreshed with %s", token)
""")
    _assert_leak(result, output, token, "log record (logger 'app.vault', INFO)")


@pytest.mark.parametrize("call", [
    'get_logger("svc").info("vault.released", extra={"fields": {"value": token}})',
    'logging.getLogger("svc").exception("boom")',
])
def test_a_secret_in_log_fields_or_exception_text_fails_the_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    result, output, token = _run(pytester, monkeypatch, f"""
from shared.log import get_logger

def test_leaks(token):
    try:
        raise ValueError("provider answered " + token)
    except ValueError:
        {call}
""")
    _assert_leak(result, output, token, "log record (logger 'svc', ")


def test_a_token_the_redacting_filter_removed_is_not_a_leak(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """What get_logger's filter redacts is never emitted, so it is not reported."""
    token = "ghp_" + secrets.token_hex(18)
    result, _, _ = _run(pytester, monkeypatch, """
from shared.log import get_logger

def test_redacted(token):
    get_logger("svc").warning("calling with %s", token)
""", token=token)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(("statement", "stream"), [
    ("print('token:', token)", "stdout"),
    ("sys.stderr.write(token)", "stderr"),
])
def test_a_secret_on_stdout_or_stderr_fails_the_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, statement: str,
        stream: str) -> None:
    result, output, token = _run(pytester, monkeypatch, f"""
def test_leaks(token):
    {statement}
""")
    _assert_leak(result, output, token, f"captured {stream} during call")


def test_a_secret_in_an_exception_message_fails_the_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, output, token = _run(pytester, monkeypatch, """
def test_leaks(token):
    raise RuntimeError("provider rejected " + token)

def test_leaks_through_a_cause(token):
    try:
        {}[token]
    except KeyError as e:
        raise ValueError("lookup failed") from e
""")
    _assert_leak(result, output, token, "exception RuntimeError raised in the test", failed=2)
    assert f"secret {fingerprint(token)} in exception KeyError raised in the test" in output


def test_a_secret_in_a_response_body_fails_at_once(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, output, token = _run(pytester, monkeypatch, """
import flask
import requests

def test_flask_response(token, leak_guard):
    app = flask.Flask("inner")
    app.add_url_rule("/", "index", lambda: {"token": token})
    leak_guard.check_response(app.test_client().get("/"), "GET /")
    pytest.fail("check_response did not raise")

def test_requests_response(token, leak_guard):
    response = requests.Response()
    response.status_code, response._content = 200, ("token=" + token).encode()
    leak_guard.check_response(response, "POST /token")
    pytest.fail("check_response did not raise")

def test_a_caught_leak_still_fails(token, leak_guard):
    try:
        leak_guard.check_text("a page", "<p>" + token + "</p>")
    except AssertionError:
        pass
""")
    _assert_leak(result, output, token, "GET / body", failed=3)
    assert f"secret {fingerprint(token)} in POST /token body" in output
    assert f"secret {fingerprint(token)} in a page" in output
    assert "check_response did not raise" not in output.split("short test summary")[-1]


def test_a_leak_in_teardown_errors_and_indirect_use_is_guarded(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, output, token = _run(pytester, monkeypatch, """
@pytest.fixture
def noisy(issued_token):
    yield issued_token
    logging.getLogger("cleanup").error("revoking %s", issued_token)

def test_indirect(issued_token):
    print(issued_token)

def test_teardown(noisy):
    pass
""")
    _assert_leak(result, output, token, "captured stdout during call", failed=1, passed=1,
                 errors=1)
    assert f"secret {fingerprint(token)} in log record (logger 'cleanup', ERROR)" in output


def test_bytes_secrets_are_found_in_their_base64_forms(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(24)
    monkeypatch.setenv("LEAK_KEY", base64.b64encode(key).decode())
    result, output, _ = _run(pytester, monkeypatch, """
import base64

def test_leaks(leak_guard):
    key = leak_guard.track(base64.b64decode(os.environ["LEAK_KEY"]))
    print(base64.urlsafe_b64encode(key).decode())
""")
    result.assert_outcomes(failed=1)
    assert f"secret {fingerprint(key)} in captured stdout during call" in output
    assert base64.urlsafe_b64encode(key).decode() not in output


# ---- the guard object on its own ---------------------------------------------------------------
class _Response:
    """Anything with ``.text`` and ``.headers`` (the shape of requests.Response)."""

    def __init__(self, text: str, headers: dict[str, str]) -> None:
        self.text, self.headers = text, headers


def test_check_response_names_the_place_and_hides_the_secret() -> None:
    guard = LeakGuard()
    token = guard.track("opaque-" + secrets.token_hex(8))
    guard.check_response(_Response('{"ok": true}', {"Content-Type": "application/json"}))
    with pytest.raises(LeakDetected) as raised:
        guard.check_response(_Response("{}", {"Location": f"/cb?t={token}"}), "callback")
    assert "callback headers" in str(raised.value) and token not in str(raised.value)
    assert guard.scrub(f"x {token} y") == f"x [leaked secret {fingerprint(token)}] y"


def test_short_or_non_text_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        LeakGuard().track("abc")
    with pytest.raises(ValueError):
        LeakGuard().track(12345678)  # type: ignore[arg-type]
