"""Leak guard: a test fails when a secret it tracks shows up where promise 8 forbids.

Usage (the fixture and the report hook are registered in ``tests/conftest.py``)::

    def test_release(leak_guard, client):
        token = leak_guard.track(issue_token())       # str or bytes; returns it unchanged
        response = client.get("/connections/c-1")
        leak_guard.check_response(response)           # raises at once if the body has it

A test is guarded when it requests ``leak_guard`` directly or through any fixture that does.
A tracked value (and, for bytes, its UTF-8, base64, urlsafe-base64 and hex forms; base64 forms
of str values too; JSON- and repr-escaped forms of all) must not appear in

* any log record emitted while the test runs (a handler on the root logger, root level lowered
  to DEBUG for the test): the JSON line :class:`shared.log.JsonFormatter` would write, the
  message, the ``fields`` extra and exception text — after any logger-level
  :class:`~shared.log.RedactingFilter` ran, i.e. what would be emitted;
* stdout/stderr captured by pytest in each phase (needs pytest's capture; ``-s`` disables it);
* the ``str``/``repr`` of an exception that fails a phase, its causes, contexts and notes;
* response bodies and headers given to :meth:`LeakGuard.check_response` (checked immediately).

A leak fails the phase with a message naming where, showing only a fingerprint (first 4
characters and length). Captured output and tracebacks of guarded tests are scrubbed of tracked
values before pytest prints them. Exceptions caught by ``pytest.raises`` are not seen.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from shared.log import JsonFormatter

MIN_SECRET = 8  # shorter values would match ordinary text and prove nothing


@dataclass(frozen=True)
class Leak:
    """One place a tracked secret appeared, by fingerprint."""

    where: str
    fingerprint: str


class LeakDetected(AssertionError):
    """Raised by :meth:`LeakGuard.check_text`; its message never contains the secret."""


def fingerprint(secret: str | bytes) -> str:
    """A printable hint of a secret: its first 4 characters and its length."""
    if isinstance(secret, bytes):
        shown = base64.urlsafe_b64encode(secret).decode("ascii")[:4]
        return f"bytes '{shown}...' ({len(secret)} bytes)"
    return f"'{secret[:4]}...' ({len(secret)} chars)"


def secret_forms(secret: str | bytes) -> tuple[str, ...]:
    """The text forms in which ``secret`` could leak, longest first."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    forms = {base64.b64encode(raw).decode("ascii").rstrip("="),
             base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")}
    if isinstance(secret, str):
        forms.add(secret)
    else:
        forms.update({raw.hex(), repr(raw)[2:-1]})
        try:
            forms.add(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    for form in list(forms):
        forms.update({json.dumps(form)[1:-1], repr(form)[1:-1]})
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET), key=len, reverse=True))


def describe(leaks: Sequence[Leak]) -> str:
    """The failure message: every place, with fingerprints only."""
    unique = dict.fromkeys(leaks)
    lines = [f"  - secret {leak.fingerprint} in {leak.where}" for leak in unique]
    return "leak guard: a tracked secret leaked (promise 8)\n" + "\n".join(lines)


class LeakGuard:
    """The per-test registry of secrets and of log lines to check; see the module docstring."""

    def __init__(self) -> None:
        self._tracked: list[tuple[str, tuple[str, ...]]] = []
        self.records: list[tuple[str, str]] = []  # (where, rendered log record)
        self._pending: list[Leak] = []  # found by check_text, reported even if caught

    def __repr__(self) -> str:
        return f"LeakGuard(tracking={len(self._tracked)})"

    @property
    def tracking(self) -> bool:
        return bool(self._tracked)

    def track(self, secret: str | bytes) -> Any:
        """Register a secret value this test created; returns it unchanged."""
        if not isinstance(secret, str | bytes) or len(secret) < MIN_SECRET:
            raise ValueError(f"leak_guard tracks str or bytes of at least {MIN_SECRET}")
        self._tracked.append((fingerprint(secret), secret_forms(secret)))
        return secret

    def find(self, where: str, text: str | bytes) -> list[Leak]:
        """The tracked secrets that appear in ``text``."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return [Leak(where, fp) for fp, forms in self._tracked if any(f in text for f in forms)]

    def scrub(self, text: str) -> str:
        """``text`` with every tracked form replaced by its fingerprint."""
        for fp, forms in self._tracked:
            for form in forms:
                text = text.replace(form, f"[leaked secret {fp}]")
        return text

    def check_text(self, where: str, text: str | bytes) -> None:
        """Raise :class:`LeakDetected` now if a tracked secret appears in ``text``."""
        leaks = self.find(where, text)
        if leaks:
            self._pending += leaks
            raise LeakDetected(describe(leaks))

    def check_response(self, response: Any, where: str = "response") -> None:
        """Check an HTTP response's body and headers (requests, werkzeug/flask test, or any
        object with ``get_data()`` or ``.text``)."""
        self.check_text(f"{where} body", _body(response))
        headers = getattr(response, "headers", None)
        if headers is not None:
            listed = "\n".join(f"{name}: {value}" for name, value in headers.items())
            self.check_text(f"{where} headers", listed)

    def take_pending(self) -> list[Leak]:
        leaks, self._pending = self._pending, []
        return leaks

    def log_leaks(self) -> list[Leak]:
        """Leaks in the log records captured since the last call (which are then dropped)."""
        records, self.records = self.records, []
        return [leak for where, text in records for leak in self.find(where, text)]

    def output_leaks(self, sections: Sequence[tuple[str, str]], when: str) -> list[Leak]:
        """Leaks in pytest's captured stdout/stderr sections of phase ``when``."""
        leaks = []
        for title, content in sections:
            parts = title.split()
            if parts[:1] == ["Captured"] and parts[1:] in (["stdout", when], ["stderr", when]):
                leaks += self.find(f"captured {parts[1]} during {when}", content)
        return leaks

    def exception_leaks(self, error: BaseException) -> list[Leak]:
        """Leaks in the str/repr/notes of ``error`` and every exception chained to it."""
        leaks, seen, todo = [], set(), [error]
        while todo:
            exc = todo.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            notes = "\n".join(map(str, getattr(exc, "__notes__", ())))
            text = f"{exc}\n{exc!r}\n{notes}"
            leaks += self.find(f"exception {type(exc).__name__} raised in the test", text)
            todo += [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
        return leaks


def _body(response: Any) -> str | bytes:
    if callable(getattr(response, "get_data", None)):
        return response.get_data()
    if hasattr(response, "text"):
        return response.text
    raise TypeError(f"cannot read a body from {type(response).__name__}")


class LogCapture(logging.Handler):
    """Renders every record it sees the way it would be emitted and hands it to a guard."""

    def __init__(self, guard: LeakGuard) -> None:
        super().__init__(logging.NOTSET)
        self._guard = guard
        self._json = JsonFormatter()
        self._plain = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        where = f"log record (logger {record.name!r}, {record.levelname})"
        self._guard.records.append((where, self._render(record)))

    def _render(self, record: logging.LogRecord) -> str:
        parts = [str(record.msg), repr(record.args), repr(getattr(record, "fields", None))]
        try:
            parts.append(self._json.format(record))
        except Exception:  # a malformed record must not hide the rest; the raw parts remain
            parts.append("<unformattable record>")
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(self._plain.formatException(record.exc_info))
        parts += [record.exc_text or "", record.stack_info or ""]
        return "\n".join(parts)


GUARD_KEY = pytest.StashKey[LeakGuard]()


@pytest.fixture
def leak_guard(request: pytest.FixtureRequest) -> Iterator[LeakGuard]:
    """A :class:`LeakGuard` for this test; log records are captured until teardown."""
    guard = LeakGuard()
    request.node.stash[GUARD_KEY] = guard
    root, handler = logging.getLogger(), LogCapture(guard)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    leaks = guard.log_leaks()  # records not yet judged: those logged during teardown
    if leaks:
        pytest.fail(describe(leaks), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Judge each phase of a guarded test: logs, captured output, the failing exception."""
    report = yield
    guard = item.stash.get(GUARD_KEY, None)
    if guard is not None and guard.tracking:
        _judge(report, call, guard)
    return report


def _judge(report: pytest.TestReport, call: pytest.CallInfo[None], guard: LeakGuard) -> None:
    leaks = guard.log_leaks() + guard.output_leaks(report.sections, call.when)
    error = call.excinfo.value if call.excinfo is not None else None
    pending = guard.take_pending()
    if not isinstance(error, LeakDetected):  # else its message already lists the leaks
        leaks += pending
        if error is not None:
            leaks += guard.exception_leaks(error)
    report.sections = [(title, guard.scrub(content)) for title, content in report.sections]
    _scrub_longrepr(report, guard, error)
    if leaks:
        previous = report.longreprtext if report.failed else ""
        report.outcome = "failed"
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        report.longrepr = "\n\n".join(part for part in (describe(leaks), previous) if part)


def _scrub_longrepr(report: pytest.TestReport, guard: LeakGuard,
                    error: BaseException | None) -> None:
    """Replace a traceback that shows a tracked secret with its scrubbed text, headed by the
    (scrubbed) exception line so pytest's one-line summary stays useful."""
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        path, line, reason = report.longrepr
        report.longrepr = (path, line, guard.scrub(reason))
        return
    text = report.longreprtext if report.longrepr is not None else ""
    if text and guard.scrub(text) != text:
        headline = f"{type(error).__name__}: {error}".splitlines()[0] if error else ""
        report.longrepr = "\n\n".join(p for p in (guard.scrub(headline), guard.scrub(text)) if p)
