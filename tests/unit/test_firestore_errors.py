"""A query Cloud Firestore refuses for want of a composite index (missing, or still building for
minutes after an apply) is retryable: the Pub/Sub message comes back, the API answers 503.
Any other refused precondition stays a permanent InvalidInput."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from shared.adapters.gcp.firestore_store import FirestoreDocumentStore
from shared.errors import InvalidInput, RetryableError, UnavailableError
from shared.ports import Filter, Order


class _RefusingQuery:
    """What the client's query builder returns; running it raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def where(self, **_: object) -> _RefusingQuery:
        return self

    def order_by(self, *_: object, **__: object) -> _RefusingQuery:
        return self

    def limit(self, _: int) -> _RefusingQuery:
        return self

    def stream(self) -> list:
        raise self._error


class _Client:
    def __init__(self, error: Exception) -> None:
        self._error = error

    def collection(self, _: str) -> _RefusingQuery:
        return _RefusingQuery(self._error)


def _query(error: Exception) -> None:
    store = FirestoreDocumentStore("p", client=_Client(error))
    store.query("connections", [Filter("status", "==", "active"),
                                Filter("next_sync_at", "<=", "2026-01-01")],
                [Order("next_sync_at")], limit=10)


def test_a_query_refused_for_a_missing_index_is_retryable():
    refusal = gexc.FailedPrecondition(
        "The query requires an index. You can create it here: https://console.firebase.google"
        ".com/v1/r/project/p/firestore/indexes?create_composite=abc")
    with pytest.raises(UnavailableError) as caught:
        _query(refusal)
    assert isinstance(caught.value, RetryableError)
    assert "console" not in str(caught.value)  # the message names the operation only


def test_another_refused_precondition_stays_permanent():
    with pytest.raises(InvalidInput):
        _query(gexc.FailedPrecondition("too much contention on these documents"))
