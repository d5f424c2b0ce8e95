"""A :class:`~shared.ports.DocumentStore` that hands every call to another one: the base of
wrappers that change one thing (the ``gcp`` write governor paces ``write_batch``; the tests'
recorders watch writes) and leave the rest as it was."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.ports import ConditionalWrite, Document, Filter, Order, Snapshot, Versioned


class DelegatingStore:
    """Every port call goes to ``inner``; anything else (``close``, an adapter's own
    attributes) is looked up there too."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, collection: str, doc_id: str) -> Document | None:
        return self.inner.get(collection, doc_id)

    def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Versioned]:
        return self.inner.get_many(collection, doc_ids)

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        self.inner.put(collection, doc_id, data)

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        return self.inner.create(collection, doc_id, data)

    def delete(self, collection: str, doc_id: str) -> None:
        self.inner.delete(collection, doc_id)

    def query(self, collection: str, where: Sequence[Filter] = (),
              order_by: Sequence[Order] = (), limit: int | None = None) -> list[Snapshot]:
        return self.inner.query(collection, where, order_by, limit)

    def transaction(self, fn: Callable[[Any], Any], *, max_attempts: int = 5) -> Any:
        return self.inner.transaction(fn, max_attempts=max_attempts)

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        return self.inner.write_batch(writes)
