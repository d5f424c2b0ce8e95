"""What only :class:`SqliteDocumentStore` does: a private file in a directory it creates, and
processes sharing that file. The behaviour both store adapters share is in
``tests/contract/test_store_contract.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from tests.support import COUNTERS, increment


def test_sqlite_file_is_private_and_its_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "store.db"
    sqlite = SqliteDocumentStore(path)
    sqlite.put("things", "t1", {"v": 1})
    try:
        for file in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    finally:
        sqlite.close()


def _increment_in_process(path: str, times: int) -> None:
    sqlite = SqliteDocumentStore(Path(path))
    for _ in range(times):
        sqlite.transaction(increment)
    sqlite.close()


def test_sqlite_processes_sharing_a_file_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    sqlite = SqliteDocumentStore(path)
    sqlite.put(COUNTERS, "c", {"n": 0})
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_increment_in_process, args=(str(path), 10))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    assert sqlite.get(COUNTERS, "c") == {"n": 20}
    sqlite.close()
