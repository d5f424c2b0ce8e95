"""Index guard: the session fails when keyway's code ran a query no declared index serves.

Cloud Firestore refuses a query that needs a composite index nobody created; the emulator and the
embedded store answer it anyway, so without this guard no test would notice. For the whole
session (``tests/conftest.py`` registers the fixture and the hook) every call of
``SqliteDocumentStore.query`` and ``FirestoreDocumentStore.query`` made by code in ``shared/`` or
``keyway/`` is recorded as the composite index it needs (:func:`shared.index_rules.required`);
queries a test issues itself (the store contract suite, assertions) are not keyway's and are not
recorded. At the end, every needed index that :data:`shared.indexes.INDEXES` does not serve is
listed — database, collection, fields, and the code that ran it — and the exit status is 1.

The database of a query: the Firestore store's own; for the embedded store, ``vault`` when its
file is ``vault.db`` (what :func:`shared.bootstrap` opens), else ``(default)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.index_rules import BUSINESS, VAULT, Index, required, unserved
from shared.indexes import INDEXES

ROOT = Path(__file__).resolve().parent.parent
CODE = (ROOT / "shared", ROOT / "keyway")
ADAPTERS = ROOT / "shared" / "adapters"


class Recorder:
    """The composite indexes keyway's queries needed, each with the first code that ran it."""

    def __init__(self) -> None:
        self.needs: dict[Index, str] = {}
        self.queries = 0

    def record(self, database: str, collection: str, where: Any, order_by: Any,
               caller: str) -> None:
        self.queries += 1
        need = required(collection, tuple(where), tuple(order_by), database)
        if need is not None:
            self.needs.setdefault(need, caller)

    def missing(self, declared: Iterable[Index] = INDEXES) -> list[tuple[Index, str]]:
        return [(need, self.needs[need]) for need in unserved(self.needs, declared)]


def report(missing: list[tuple[Index, str]]) -> str:
    lines = ["Firestore would refuse these queries: no declared composite index serves them.",
             "Add each index to shared/indexes.py, then run python -m keyway.infra_export."]
    lines += [f"  {need.describe()}  (queried by {caller})" for need, caller in missing]
    return "\n".join(lines)


def database_of(store: Any) -> str:
    database = getattr(store, "database", None)
    if isinstance(database, str):
        return database
    path = getattr(store, "_path", None)
    return VAULT if isinstance(path, Path) and path.stem == "vault" else BUSINESS


def _caller() -> str | None:
    """``path:line`` of the code that called the adapter, when it is keyway's (else None)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if not path.is_relative_to(ADAPTERS):
            if any(path.is_relative_to(root) for root in CODE):
                return f"{path.relative_to(ROOT)}:{frame.f_lineno}"
            return None
        frame = frame.f_back
    return None


def recording(query: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    """``query`` that records (after it succeeded) what keyway's code asked for."""

    def wrapped(store: Any, collection: str, where: Any = (), order_by: Any = (),
                limit: int | None = None) -> Any:
        found = query(store, collection, where, order_by, limit)
        caller = _caller()
        if caller is not None:
            recorder.record(database_of(store), collection, where, order_by, caller)
        return found

    return wrapped


def store_classes() -> list[type]:
    classes: list[type] = [SqliteDocumentStore]
    try:
        from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
    except ImportError:  # google-cloud-firestore not installed: the embedded suite still runs
        return classes
    return [*classes, FirestoreDocumentStore]


SESSION = Recorder()


@pytest.fixture(scope="session", autouse=True)
def index_guard() -> Iterator[Recorder]:
    """Record every query keyway's code runs, for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        for cls in store_classes():
            patch.setattr(cls, "query", recording(cls.query, SESSION))
        yield SESSION


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    missing = SESSION.missing()
    if not missing:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = report(missing)
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(text, red=True, bold=True)
    else:
        sys.stderr.write(text + "\n")
    if session.exitstatus == pytest.ExitCode.OK:  # an interrupted or failed run keeps its status
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
