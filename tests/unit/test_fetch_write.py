"""Page writes (shared.fetch.write): the same newer-wins rule as the per-record upsert, one
read and one conditional batch per page, and only the documents whose precondition failed
are read and written again."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.clock import isoformat
from shared.errors import ContentionError, InvalidInput
from shared.fetch import write as writes
from shared.records import store as records
from tests.store_wrappers import Interleaving, WriteRecorder

KIND = "pull_requests"


def at(seconds: int) -> str:
    return isoformat(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds))


def pr(number: int, version: int, title: str = "t") -> dict:
    return {"id": f"acme:github:pr:r%23{number}", "kind": KIND, "updated_at": at(version),
            "title": title, "deleted": False}


@pytest.fixture
def store(tmp_path: Path) -> SqliteDocumentStore:
    return SqliteDocumentStore(tmp_path / "store.db")


STORED = {  # what may be stored before a record of version 10 arrives
    "absent": None,
    "older": pr(1, 5, "stored"),
    "as_new": pr(1, 10, "stored"),
    "newer": pr(1, 15, "stored"),
    "older_with_kept": {**pr(1, 5, "stored"), "fresh_as_of": at(99)},
    "tombstone_older": {**pr(1, 1, "stored"), "deleted": True, "deleted_at": at(5)},
    "tombstone_as_new": {**pr(1, 1, "stored"), "deleted": True, "deleted_at": at(10)},
    "tombstone_newer": {**pr(1, 1, "stored"), "deleted": True, "deleted_at": at(20)},
}


@pytest.mark.parametrize("case", sorted(STORED))
def test_a_page_write_decides_exactly_as_the_per_record_upsert(tmp_path: Path, case: str) -> None:
    one, many = (SqliteDocumentStore(tmp_path / f"{n}.db") for n in ("one", "many"))
    incoming = pr(1, 10, "incoming")
    for target in (one, many):
        if STORED[case] is not None:
            target.put(KIND, incoming["id"], STORED[case])
    wrote_one = records.upsert(one, incoming)
    wrote_many = writes.upsert_page(many, [incoming])
    assert wrote_many == ([incoming] if wrote_one else [])
    assert many.get(KIND, incoming["id"]) == one.get(KIND, incoming["id"])


@pytest.mark.parametrize("seen", [None, 3, 15, 25])
@pytest.mark.parametrize("case", sorted(STORED))
def test_a_page_write_with_a_sighting_time_decides_as_the_upsert_with_it(
        tmp_path: Path, case: str, seen: int | None) -> None:
    """A full list's sighting (``seen_at``) clears a tombstone older than it, even with an
    older record, exactly as :func:`records.upsert` does — and nothing else changes."""
    one, many = (SqliteDocumentStore(tmp_path / f"{n}.db") for n in ("one", "many"))
    incoming = pr(1, 10, "incoming")
    for target in (one, many):
        if STORED[case] is not None:
            target.put(KIND, incoming["id"], STORED[case])
    seen_at = None if seen is None else at(seen)
    wrote_one = records.upsert(one, incoming, seen_at)
    wrote_many = writes.upsert_page(many, [incoming], seen_at=seen_at)
    assert wrote_many == ([incoming] if wrote_one else [])
    assert many.get(KIND, incoming["id"]) == one.get(KIND, incoming["id"])
    if case == "tombstone_newer" and seen == 25:  # the case the sighting exists for
        restored = many.get(KIND, incoming["id"])
        assert not restored["deleted"] and restored["restored_at"] == at(25)


def test_a_page_write_refuses_a_malformed_sighting_time(store) -> None:
    with pytest.raises(InvalidInput):
        writes.upsert_page(store, [pr(1, 10)], seen_at="yesterday")
    assert store.get(KIND, pr(1, 10)["id"]) is None


def test_one_read_per_kind_and_one_batch_per_page(store) -> None:
    calls: list[str] = []
    counted = Interleaving(store, lambda batch: calls.append(f"batch:{len(batch)}"))
    original = counted.get_many
    counted.get_many = lambda c, ids: (calls.append(f"read:{c}:{len(ids)}"), original(c, ids))[1]
    page = [pr(n, 1) for n in range(100)] + [
        {"id": "acme:github:label:r%23bug", "kind": "labels", "updated_at": at(1)}]
    written = writes.upsert_page(counted, page)
    assert len(written) == 101
    assert calls == ["read:pull_requests:100", "read:labels:1", "batch:101"]


def test_more_than_500_records_go_in_batches_of_at_most_500(store) -> None:
    sizes: list[int] = []
    written = writes.upsert_page(Interleaving(store, lambda b: sizes.append(len(b))),
                                 [pr(n, 1) for n in range(1203)])
    assert len(written) == 1203 and sizes == [500, 500, 203]


def test_the_same_record_twice_in_a_page_is_written_in_turns(store) -> None:
    first, second, stale = pr(1, 5, "first"), pr(1, 9, "second"), pr(1, 7, "stale")
    written = writes.upsert_page(store, [first, second, stale, None])
    assert written == [first, second]  # as three upserts in a row would: the stale one loses
    assert store.get(KIND, first["id"])["title"] == "second"


def test_only_the_documents_whose_precondition_failed_are_retried(store) -> None:
    page = [pr(n, 10, "sync") for n in range(5)]
    batches: list[list[str]] = []
    webhook = itertools.count()

    def concurrent_writer(batch) -> None:
        batches.append([w.doc_id for w in batch])
        if next(webhook) == 0:  # between the page's read and its batch: older for 1, newer for 3
            store.put(KIND, page[1]["id"], pr(1, 2, "webhook, older"))
            store.put(KIND, page[3]["id"], pr(3, 20, "webhook, newer"))

    written = writes.upsert_page(Interleaving(store, concurrent_writer), page)
    assert batches == [[p["id"] for p in page], [page[1]["id"]]]  # 3 is decided: no write
    assert [r["id"] for r in written] == [page[n]["id"] for n in (0, 2, 4, 1)]
    assert store.get(KIND, page[3]["id"])["title"] == "webhook, newer"
    assert store.get(KIND, page[1]["id"])["title"] == "sync"


def test_a_page_that_keeps_losing_races_raises_contention_error(store) -> None:
    page = [pr(1, 10, "sync")]
    versions = itertools.count(1)

    def always_first(batch) -> None:  # rewrites the document before every batch
        store.put(KIND, page[0]["id"], {**pr(1, 1), "n": next(versions)})

    with pytest.raises(ContentionError):
        writes.upsert_page(Interleaving(store, always_first), page)
    assert store.get(KIND, page[0]["id"])["title"] == "t"  # never the page's record


def test_a_bad_record_is_refused_before_anything_is_written(store) -> None:
    recorder = WriteRecorder(store)
    with pytest.raises(InvalidInput):
        writes.upsert_page(recorder, [pr(1, 1), {"id": "x", "kind": KIND, "updated_at": "soon"}])
    assert recorder.writes == {} and store.get(KIND, pr(1, 1)["id"]) is None
