"""The DocumentStore contract: every adapter must pass every test here.

The ``store`` fixture (``tests/contract/conftest.py``, shared with
``test_store_create_contract.py``): ``embedded`` is :class:`SqliteDocumentStore` on a temporary
file; ``emulator`` is :class:`FirestoreDocumentStore` on the official Firestore emulator with a
fresh project per test.
What only the embedded adapter does (its file, processes sharing it) is tested in
``tests/unit/test_sqlite_store.py``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
from shared.errors import ContentionError, InvalidInput
from shared.ports import DocumentStore, Filter, Order, Snapshot, Transaction
from tests.support import COUNTERS, increment


def _embedded(store: Any) -> bool:
    """The embedded adapter, or a test wrapper over it (tests/store_wrappers.py)."""
    return isinstance(getattr(store, "inner", store), SqliteDocumentStore)


@pytest.fixture
def open_store(store: Any, tmp_path: Path) -> Any:
    """Open another namespace of the same backend: a second file, or a second database."""
    opened: list[Any] = []

    def factory(name: str) -> Any:
        if _embedded(store):
            other: Any = SqliteDocumentStore(tmp_path / f"{name}.db")
        else:
            other = FirestoreDocumentStore(project=store.project, database=name)
        opened.append(other)
        return other

    yield factory
    for other in opened:
        other.close()


def ids(snapshots: list[Snapshot]) -> list[str]:
    return [snapshot.id for snapshot in snapshots]


def seed(store: DocumentStore, collection: str, docs: dict[str, dict[str, Any]]) -> None:
    for doc_id, data in docs.items():
        store.put(collection, doc_id, data)


# ---- documents ----------------------------------------------------------------------------
def test_put_get_round_trips_every_value_type(store: DocumentStore) -> None:
    doc = {
        "none": None, "yes": True, "no": False, "int": 7, "float": 1.0, "neg": -2**63,
        "text": "héllo ✓", "empty": "", "raw": b"\x00\xff\x10", "no_bytes": b"",
        "list": [1, "two", None, b"\x03", {"deep": [True]}], "nil_list": [], "nil_map": {},
        "nested": {"a": {"b": {"c": 1.5}}},
    }
    store.put("things", "t1", doc)
    got = store.get("things", "t1")
    assert got == doc
    assert type(got["int"]) is int and type(got["float"]) is float
    assert got["yes"] is True and type(got["raw"]) is bytes and got["list"][3] == b"\x03"


def test_timestamps_round_trip_as_utc_datetimes(store: DocumentStore) -> None:
    """Aware datetimes (what a Firestore TTL policy needs) come back as UTC datetimes with
    microsecond precision, whatever offset they were written with, nested ones too."""
    berlin = timezone(timedelta(hours=2))
    written = datetime(2031, 5, 6, 9, 8, 7, 654321, tzinfo=berlin)
    store.put("things", "t", {"purge_at": written, "nested": {"at": [written]}})
    got = store.get("things", "t")
    assert got is not None
    for value in (got["purge_at"], got["nested"]["at"][0]):
        assert type(value) is datetime and value.utcoffset() == timedelta(0)
        assert value == written and value.hour == 7 and value.microsecond == 654321
    assert store.query("things", [Filter("purge_at", "==", None)]) == []  # not a string/null


def test_timestamps_are_not_filter_values(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput):
        store.query("things", [Filter("purge_at", "<", datetime.now(UTC))])


def test_get_missing_is_none(store: DocumentStore) -> None:
    assert store.get("things", "nope") is None


def test_put_replaces_the_whole_document(store: DocumentStore) -> None:
    store.put("things", "t1", {"a": 1, "b": 2})
    store.put("things", "t1", {"c": 3})
    assert store.get("things", "t1") == {"c": 3}


def test_delete_then_get_is_none_and_deleting_missing_is_ok(store: DocumentStore) -> None:
    store.put("things", "t1", {"a": 1})
    store.delete("things", "t1")
    assert store.get("things", "t1") is None
    store.delete("things", "t1")
    store.delete("things", "never-existed")


def test_collections_are_isolated(store: DocumentStore) -> None:
    store.put("left", "same", {"side": "left"})
    store.put("right", "same", {"side": "right"})
    store.delete("right", "same")
    assert store.get("left", "same") == {"side": "left"}
    assert ids(store.query("left")) == ["same"] and store.query("right") == []


def test_another_file_or_database_is_isolated(store: DocumentStore, open_store: Any) -> None:
    vault = open_store("vault")
    store.put("secrets", "s1", {"where": "default"})
    vault.put("secrets", "s1", {"where": "vault"})
    vault.put("secrets", "s2", {"where": "vault"})
    assert store.get("secrets", "s1") == {"where": "default"}
    assert ids(store.query("secrets")) == ["s1"]
    assert vault.get("secrets", "s1") == {"where": "vault"}


# ---- queries ------------------------------------------------------------------------------
ROWS = {
    "r1": {"n": 1, "s": "apple", "b": True, "nested": {"k": 1}, "raw": b"\x01"},
    "r2": {"n": 2.5, "s": "banana", "b": False, "nested": {"k": 2}, "raw": b"\x02"},
    "r3": {"n": 3, "s": "cherry", "b": True, "nested": {"k": 3}, "raw": b"\x01\x00"},
    "r4": {"n": None, "s": 4, "b": "yes"},
    "r5": {"other": 1},
}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("n", "==", 1, ["r1"]),
        ("n", "==", 3.0, ["r3"]),
        ("n", "!=", 1, ["r2", "r3"]),
        ("n", "<", 3, ["r1", "r2"]),
        ("n", "<=", 3, ["r1", "r2", "r3"]),
        ("n", ">", 1, ["r2", "r3"]),
        ("n", ">=", 2.5, ["r2", "r3"]),
        ("n", "in", [1, 3], ["r1", "r3"]),
        ("n", "==", None, ["r4"]),
        ("n", "!=", None, ["r1", "r2", "r3"]),
        ("s", ">", "apple", ["r2", "r3"]),
        ("s", "<", 10, ["r4"]),
        ("s", "in", ["apple", "cherry", 4], ["r1", "r3", "r4"]),
        ("b", "==", True, ["r1", "r3"]),
        ("b", "!=", True, ["r2", "r4"]),
        ("nested.k", ">=", 2, ["r2", "r3"]),
        ("raw", "==", b"\x01", ["r1"]),
        ("raw", ">", b"\x01", ["r2", "r3"]),
        ("raw", "<", b"\x02", ["r1", "r3"]),
        ("missing", "==", 1, []),
    ],
)
def test_query_operators(
    store: DocumentStore, field: str, op: Any, value: Any, expected: list[str]
) -> None:
    seed(store, "rows", ROWS)
    assert ids(store.query("rows", [Filter(field, op, value)])) == expected


def test_filters_are_anded_and_skip_documents_missing_the_field(store: DocumentStore) -> None:
    seed(store, "rows", ROWS)
    assert ids(store.query("rows", [Filter("n", ">", 1), Filter("b", "==", True)])) == ["r3"]
    for op, value in [("==", 1), ("!=", 99), ("<", 99), (">=", -99), ("in", [1])]:
        on_n = Filter("n", op, value)
        assert "r5" not in ids(store.query("rows", [on_n]))
        assert ids(store.query("rows", [Filter("other", "<", 2), on_n])) == []


def test_order_by_ascending_descending_and_limit(store: DocumentStore) -> None:
    seed(store, "ranked", {
        "a": {"rank": 3, "in": {"x": "b"}}, "b": {"rank": 1, "in": {"x": "c"}},
        "c": {"rank": 2, "in": {"x": "a"}}, "d": {"rank": "top"}, "e": {"unranked": True},
        "f": {"rank": 2},
    })
    assert ids(store.query("ranked", order_by=[Order("rank")])) == ["b", "c", "f", "a", "d"]
    descending = [Order("rank", descending=True)]
    assert ids(store.query("ranked", order_by=descending)) == ["d", "a", "f", "c", "b"]
    assert ids(store.query("ranked", order_by=descending, limit=2)) == ["d", "a"]
    assert ids(store.query("ranked", order_by=[Order("in.x")])) == ["c", "a", "b"]
    filtered = store.query("ranked", [Filter("rank", "<", 3)], [Order("rank")], limit=2)
    assert ids(filtered) == ["b", "c"] and filtered[0].data == {"rank": 1, "in": {"x": "c"}}


def test_default_order_is_by_document_id(store: DocumentStore) -> None:
    seed(store, "ids", {"m": {"v": 1}, "b": {"v": 3}, "z": {"v": 2}, "a": {"v": 4}})
    assert ids(store.query("ids")) == ["a", "b", "m", "z"]
    assert ids(store.query("ids", limit=2)) == ["a", "b"]
    assert ids(store.query("ids", [Filter("v", ">", 1)], limit=2)) == ["a", "b"]
    assert ids(store.query("ids", [Filter("v", "in", [1, 2])])) == ["m", "z"]
    assert store.query("ids", limit=0) == []


@pytest.mark.parametrize(
    "clause",
    [Filter("n", "<", None), Filter("n", "in", []), Filter("n", "in", [None]),
     Filter("n", "==", [1]), Filter("n", "like", 1), Filter("bad-field", "==", 1),
     Filter("n", ">", float("inf")), Filter("s", "==", "\ud800")],
)
def test_invalid_filters_are_rejected(store: DocumentStore, clause: Filter) -> None:
    with pytest.raises(InvalidInput):
        store.query("rows", [clause])


def test_at_most_one_not_equal_filter(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput):
        store.query("rows", [Filter("n", "!=", 1), Filter("s", "!=", None)])


# ---- values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [{1, 2}, datetime(2024, 1, 1), object(), {1: "int key"}, {"": 1},
     {"__bytes__": "00"}, {"__timestamp__": "x"}, [[1]], 2**64, float("nan"), (1, 2),
     bytearray(b"x")],
    ids=["set", "naive-datetime", "object", "int-key", "empty-key", "reserved-key",
         "reserved-timestamp-key", "list-in-list",
         "big-int", "nan", "tuple", "bytearray"],
)
def test_unsupported_value_is_rejected_and_nothing_stored(store: DocumentStore, bad: Any) -> None:
    store.put("things", "kept", {"v": 1})
    shapes = [{"ok": 1, "bad": {"inner": bad}}, {"ok": 1, "bad": bad}, {"ok": 1, "l": [bad]}]
    if isinstance(bad, dict):  # its keys at the document's top level too
        shapes.append({"ok": 1, **bad})
    for doc_id in ("kept", "new"):
        for doc in shapes:
            with pytest.raises(InvalidInput):
                store.put("things", doc_id, doc)
    assert store.get("things", "kept") == {"v": 1} and store.get("things", "new") is None


@pytest.mark.parametrize("doc_id", ["", "a/b", ".", "..", "__x__"])
def test_invalid_document_ids_are_rejected(store: DocumentStore, doc_id: str) -> None:
    with pytest.raises(InvalidInput):
        store.put("things", doc_id, {"v": 1})
    with pytest.raises(InvalidInput):
        store.get("things", doc_id)


# ---- transactions -------------------------------------------------------------------------
def test_transaction_commits_atomically(store: DocumentStore) -> None:
    seed(store, "acct", {"alice": {"bal": 10}, "bob": {"bal": 0}, "old": {"x": 1}})

    def transfer(tx: Transaction) -> str:
        alice, bob = tx.get("acct", "alice"), tx.get("acct", "bob")
        assert alice is not None and bob is not None and tx.get("acct", "ghost") is None
        tx.put("acct", "alice", {"bal": alice["bal"] - 4})
        tx.put("acct", "bob", {"bal": bob["bal"] + 4})
        tx.delete("acct", "old")
        return "done"

    assert store.transaction(transfer) == "done"
    assert [s.data for s in store.query("acct")] == [{"bal": 6}, {"bal": 4}]


class Boom(Exception):
    pass


def test_transaction_that_raises_writes_nothing_and_reraises(store: DocumentStore) -> None:
    store.put("acct", "alice", {"bal": 10})
    boom = Boom("stop")

    def fail(tx: Transaction) -> None:
        tx.get("acct", "alice")
        tx.put("acct", "alice", {"bal": 0})
        tx.put("acct", "carol", {"bal": 1})
        tx.delete("acct", "alice")
        raise boom

    with pytest.raises(Boom) as caught:
        store.transaction(fail)
    assert caught.value is boom
    assert store.get("acct", "alice") == {"bal": 10} and store.get("acct", "carol") is None


def test_read_after_write_in_a_transaction_is_invalid(store: DocumentStore) -> None:
    def read_late(tx: Transaction) -> None:
        tx.put("acct", "a", {"bal": 1})
        tx.get("acct", "b")

    def read_after_delete(tx: Transaction) -> None:
        tx.delete("acct", "a")
        tx.get("acct", "a")

    for fn in (read_late, read_after_delete):
        with pytest.raises(InvalidInput):
            store.transaction(fn)
    assert store.get("acct", "a") is None


def test_unsupported_value_in_a_transaction_writes_nothing(store: DocumentStore) -> None:
    def write_bad(tx: Transaction) -> None:
        tx.put("acct", "a", {"bal": 1})
        tx.put("acct", "b", {"when": datetime.now()})  # naive: no timezone

    with pytest.raises(InvalidInput):
        store.transaction(write_bad)
    assert store.get("acct", "a") is None and store.get("acct", "b") is None


def test_concurrent_transactional_increments_lose_no_update(store: DocumentStore) -> None:
    # Contended emulator transactions cost seconds per conflict: keep that variant tiny.
    threads, times = (2, 10) if _embedded(store) else (2, 3)
    store.put(COUNTERS, "c", {"n": 0})
    barrier, errors = threading.Barrier(threads), []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(times):
                store.transaction(increment, max_attempts=10)
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert store.get(COUNTERS, "c") == {"n": threads * times}


def test_losing_every_race_raises_contention_error(store: DocumentStore, tmp_path: Path) -> None:
    store.put(COUNTERS, "c", {"n": 0})
    embedded = _embedded(store)
    rival: Any = SqliteDocumentStore(tmp_path / "store.db", busy_timeout=0.2) if embedded else store
    outcome: list[BaseException | None] = []

    def try_once() -> None:
        try:
            rival.transaction(increment, max_attempts=1)
            outcome.append(None)
        except Exception as e:  # the assertion below says what it was
            outcome.append(e)

    def hold(tx: Transaction) -> None:
        current = tx.get(COUNTERS, "c")
        assert current is not None
        if not outcome:  # while this transaction is open, the rival one cannot commit
            worker = threading.Thread(target=try_once)
            worker.start()
            worker.join(timeout=120)
        tx.put(COUNTERS, "c", {"n": current["n"] + 10})

    store.transaction(hold)
    if embedded:
        rival.close()
    assert len(outcome) == 1 and isinstance(outcome[0], ContentionError)
    assert store.get(COUNTERS, "c") == {"n": 10}
