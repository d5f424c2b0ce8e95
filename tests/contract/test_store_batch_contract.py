"""The DocumentStore contract, batches: ``get_many`` (many documents and their versions in one
call) and ``write_batch`` (conditional writes, each applied only if its document is still as
read). Every adapter passes every test here, on the ``store`` fixture of
``tests/contract/conftest.py`` (embedded and the Firestore emulator)."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared.errors import InvalidInput
from shared.ports import MAX_BATCH_WRITES, ConditionalWrite, DocumentStore


def test_get_many_answers_every_id_with_data_and_version(store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    store.put("prs", "b", {"n": 2, "raw": b"\x00\xff"})
    found = store.get_many("prs", ["a", "b", "missing"])
    assert set(found) == {"a", "b", "missing"}
    assert found["a"].data == {"n": 1} and found["b"].data == {"n": 2, "raw": b"\x00\xff"}
    assert found["a"].version and found["b"].version
    assert found["missing"].data is None and found["missing"].version is None
    assert store.get_many("prs", []) == {}


def test_a_version_changes_when_the_document_changes(store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    before = store.get_many("prs", ["a"])["a"].version
    store.put("prs", "a", {"n": 2})
    assert store.get_many("prs", ["a"])["a"].version != before


def test_writes_whose_preconditions_hold_are_applied(store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    read = store.get_many("prs", ["a", "b"])
    failed = store.write_batch([
        ConditionalWrite("prs", "a", {"n": 10}, read["a"].version),
        ConditionalWrite("prs", "b", {"n": 20}, None),  # absent when read
        ConditionalWrite("labels", "c", {"n": 30}, None),  # another collection in one batch
    ])
    assert failed == []
    assert store.get("prs", "a") == {"n": 10}
    assert store.get("prs", "b") == {"n": 20}
    assert store.get("labels", "c") == {"n": 30}


def test_a_document_changed_since_it_was_read_is_reported_and_not_written(
        store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    store.put("prs", "b", {"n": 2})
    read = store.get_many("prs", ["a", "b"])
    store.put("prs", "a", {"n": "newer, written by someone else"})
    stale = ConditionalWrite("prs", "a", {"n": "older"}, read["a"].version)
    fresh = ConditionalWrite("prs", "b", {"n": 22}, read["b"].version)
    assert store.write_batch([stale, fresh]) == [stale]  # the others are still written
    assert store.get("prs", "a") == {"n": "newer, written by someone else"}
    assert store.get("prs", "b") == {"n": 22}


def test_a_document_created_since_it_was_read_absent_is_reported_and_kept(
        store: DocumentStore) -> None:
    read = store.get_many("prs", ["a"])
    store.put("prs", "a", {"n": "created meanwhile"})
    write = ConditionalWrite("prs", "a", {"n": "mine"}, read["a"].version)
    assert store.write_batch([write]) == [write]
    assert store.get("prs", "a") == {"n": "created meanwhile"}


def test_a_document_deleted_since_it_was_read_is_reported_and_stays_deleted(
        store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    read = store.get_many("prs", ["a"])
    store.delete("prs", "a")
    write = ConditionalWrite("prs", "a", {"n": 2}, read["a"].version)
    assert store.write_batch([write]) == [write]
    assert store.get("prs", "a") is None


def test_a_retry_after_a_fresh_read_succeeds(store: DocumentStore) -> None:
    store.put("prs", "a", {"n": 1})
    old = store.get_many("prs", ["a"])["a"].version
    store.put("prs", "a", {"n": 2})
    assert store.write_batch([ConditionalWrite("prs", "a", {"n": 3}, old)]) != []
    again = store.get_many("prs", ["a"])["a"].version
    assert store.write_batch([ConditionalWrite("prs", "a", {"n": 3}, again)]) == []
    assert store.get("prs", "a") == {"n": 3}


def test_more_than_the_batch_limit_is_refused_and_nothing_is_written(
        store: DocumentStore) -> None:
    writes = [ConditionalWrite("prs", f"p{i}", {"n": i}, None)
              for i in range(MAX_BATCH_WRITES + 1)]
    with pytest.raises(InvalidInput, match="at most 500 writes"):
        store.write_batch(writes)
    assert store.get("prs", "p0") is None


def test_the_batch_limit_itself_is_accepted(store: DocumentStore) -> None:
    writes = [ConditionalWrite("prs", f"p{i:03}", {"n": i}, None)
              for i in range(MAX_BATCH_WRITES)]
    assert store.write_batch(writes) == []
    found = store.get_many("prs", [f"p{i:03}" for i in range(MAX_BATCH_WRITES)])
    assert all(found[f"p{i:03}"].data == {"n": i} for i in range(MAX_BATCH_WRITES))


def test_two_writes_of_one_document_in_a_batch_are_refused(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput, match="one write per document"):
        store.write_batch([ConditionalWrite("prs", "a", {"n": 1}, None),
                           ConditionalWrite("prs", "a", {"n": 2}, None)])
    assert store.get("prs", "a") is None


def test_an_unsupported_value_is_refused_and_nothing_is_written(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput):
        store.write_batch([ConditionalWrite("prs", "a", {"n": 1}, None),
                           ConditionalWrite("prs", "b", {"when": datetime.now()}, None)])
    assert store.get_many("prs", ["a", "b"])["a"].data is None


def test_bad_ids_and_versions_are_refused(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput):
        store.get_many("prs", "abc")  # one string, not a sequence of ids
    with pytest.raises(InvalidInput):
        store.get_many("prs", ["__reserved__"])
    with pytest.raises(InvalidInput):
        store.write_batch([ConditionalWrite("prs", "a", {"n": 1}, "")])


def test_an_empty_batch_writes_nothing(store: DocumentStore) -> None:
    assert store.write_batch([]) == []
