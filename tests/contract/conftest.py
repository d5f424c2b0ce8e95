"""Fixtures shared by the contract suites of one port split over several modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
from shared.adapters.governor import GovernedStore, WriteGovernor
from tests.store_wrappers import WriteRecorder
from tests.support import FakeClock


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator),
                        "recorded", "governed"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every adapter, the tests' write-recording wrapper and the gcp write governor's store
    (both over the embedded store)."""
    if request.param == "embedded":
        opened: Any = SqliteDocumentStore(tmp_path / "store.db")
    elif request.param == "recorded":
        opened = WriteRecorder(SqliteDocumentStore(tmp_path / "store.db"))
    elif request.param == "governed":
        opened = GovernedStore(SqliteDocumentStore(tmp_path / "store.db"),
                               WriteGovernor(FakeClock()))
    else:
        request.getfixturevalue("emulator_env")
        project = request.getfixturevalue("unique_project")
        opened = FirestoreDocumentStore(project=project, database="(default)")
    yield opened
    opened.close()
