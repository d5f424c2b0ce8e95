"""Fixtures shared by the contract suites of one port split over several modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
from tests.store_wrappers import WriteRecorder


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator),
                        "recorded"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every adapter, and the tests' write-recording wrapper (over the embedded store)."""
    if request.param == "embedded":
        opened: Any = SqliteDocumentStore(tmp_path / "store.db")
    elif request.param == "recorded":
        opened = WriteRecorder(SqliteDocumentStore(tmp_path / "store.db"))
    else:
        request.getfixturevalue("emulator_env")
        project = request.getfixturevalue("unique_project")
        opened = FirestoreDocumentStore(project=project, database="(default)")
    yield opened
    opened.close()
