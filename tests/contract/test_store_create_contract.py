"""The DocumentStore contract, ``create`` (create-if-absent): every adapter must pass every test
here, on the ``store`` fixture of ``tests/contract/conftest.py`` (embedded and emulator)."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from shared.errors import InvalidInput
from shared.ports import DocumentStore

CONTENDERS = 20


def test_create_writes_an_absent_document_and_says_so(store: DocumentStore) -> None:
    assert store.create("claims", "a", {"owner": "x", "n": 1}) is True
    assert store.get("claims", "a") == {"owner": "x", "n": 1}


def test_create_of_an_existing_document_writes_nothing_and_returns_false(
        store: DocumentStore) -> None:
    store.put("claims", "a", {"owner": "first"})
    assert store.create("claims", "a", {"owner": "second"}) is False
    assert store.create("claims", "a", {"owner": "third"}) is False
    assert store.get("claims", "a") == {"owner": "first"}


def test_a_deleted_document_can_be_created_again(store: DocumentStore) -> None:
    assert store.create("claims", "a", {"owner": "first"}) is True
    store.delete("claims", "a")
    assert store.create("claims", "a", {"owner": "second"}) is True
    assert store.get("claims", "a") == {"owner": "second"}


def test_create_with_an_unsupported_value_raises_and_writes_nothing(store: DocumentStore) -> None:
    with pytest.raises(InvalidInput):
        store.create("claims", "a", {"when": datetime.now()})  # naive: no timezone
    assert store.get("claims", "a") is None


def test_of_concurrent_creates_of_one_id_exactly_one_wins(store: DocumentStore) -> None:
    barrier = threading.Barrier(CONTENDERS)
    outcomes: dict[int, bool] = {}
    errors: list[BaseException] = []

    def contend(n: int) -> None:
        try:
            barrier.wait()
            outcomes[n] = store.create("claims", "race", {"owner": n})
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    workers = [threading.Thread(target=contend, args=(n,)) for n in range(CONTENDERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    winners = [n for n, won in outcomes.items() if won]
    assert len(outcomes) == CONTENDERS and len(winners) == 1
    assert store.get("claims", "race") == {"owner": winners[0]}
