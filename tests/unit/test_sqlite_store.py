"""What only :class:`SqliteDocumentStore` does: a private file in a directory it creates, and
processes sharing that file. The behaviour both store adapters share is in
``tests/contract/test_store_contract.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from pathlib import Path

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.errors import ContentionError
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


def test_writers_of_one_file_in_one_process_share_one_queue(tmp_path: Path) -> None:
    """Threads queue on one in-process lock per file (not in SQLite's sleeping busy handler);
    another file has its own, and waiting is bounded by busy_timeout like SQLite's wait."""
    from shared.adapters.embedded._locks import writer_lock

    one = SqliteDocumentStore(tmp_path / "a.db", busy_timeout=0.2)
    same = SqliteDocumentStore(tmp_path / "sub" / ".." / "a.db", busy_timeout=0.2)
    other = SqliteDocumentStore(tmp_path / "b.db", busy_timeout=0.2)
    try:
        assert writer_lock(tmp_path / "a.db") is writer_lock(tmp_path / "sub" / ".." / "a.db")
        assert writer_lock(tmp_path / "a.db") is not writer_lock(tmp_path / "b.db")
        outcome: list[BaseException | None] = []

        def rival() -> None:
            try:
                same.put("c", "x", {"n": 1})
                outcome.append(None)
            except ContentionError as e:
                outcome.append(e)

        def hold(tx) -> None:
            tx.put("c", "y", {"n": 2})
            other.put("c", "z", {"n": 3})  # another file: not blocked
            worker = threading.Thread(target=rival)
            worker.start()
            worker.join(timeout=30)

        one.transaction(hold)
        assert len(outcome) == 1 and isinstance(outcome[0], ContentionError)
        assert same.get("c", "x") is None and one.get("c", "y") == {"n": 2}
        assert other.get("c", "z") == {"n": 3}
    finally:
        for store in (one, same, other):
            store.close()


def test_the_durability_level_reaches_every_connection(tmp_path: Path) -> None:
    """``normal`` (the default: a commit survives a process crash) or ``full`` (fsync on
    every commit), on the store's and the bus's connections alike; anything else is refused."""
    import pytest

    from shared.adapters.embedded.sqlite_bus import SqliteMessageBus

    levels = {"normal": 1, "full": 2}  # PRAGMA synchronous answers a number
    for name, number in levels.items():
        store = SqliteDocumentStore(tmp_path / f"{name}.db", synchronous=name)
        bus = SqliteMessageBus(tmp_path / f"{name}-bus.db", synchronous=name)
        try:
            got: list[int] = []
            worker = threading.Thread(target=lambda s=store, b=bus, out=got: out.extend([
                s._connection().execute("PRAGMA synchronous").fetchone()[0],
                b._connect().execute("PRAGMA synchronous").fetchone()[0]]))
            worker.start()  # a thread of its own: its connections are opened for it
            worker.join()
            assert got == [number, number]
        finally:
            store.close()
            bus.close()
    with pytest.raises(ValueError):
        SqliteDocumentStore(tmp_path / "off.db", synchronous="off")
