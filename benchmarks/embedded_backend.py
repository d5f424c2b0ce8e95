"""Throughput of the embedded adapters that `make run` and the tests sit on.

Bounded: a fixed number of operations in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.ports import Filter, SubscriptionSpec

N_DOCS = 2000
N_MESSAGES = 2000


def _rate(count: int, seconds: float) -> dict:
    return {"count": count, "seconds": round(seconds, 4), "per_second": round(count / seconds, 1)}


def _increment(tx) -> None:
    tx.put("counters", "c", {"n": tx.get("counters", "c")["n"] + 1})


def _store(folder: Path) -> dict:
    store = SqliteDocumentStore(folder / "bench.db")
    start = time.perf_counter()
    for i in range(N_DOCS):
        state = "open" if i % 2 else "closed"
        store.put("prs", f"pr-{i}", {"n": i, "state": state, "title": "x" * 80})
    put = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(N_DOCS):
        store.get("prs", f"pr-{i}")
    get = time.perf_counter() - start
    start = time.perf_counter()
    rows = store.query("prs", [Filter("state", "==", "open")], limit=N_DOCS)
    query = time.perf_counter() - start
    store.put("counters", "c", {"n": 0})

    def bump() -> None:
        for _ in range(100):
            store.transaction(_increment)

    start = time.perf_counter()
    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tx = time.perf_counter() - start
    assert store.get("counters", "c")["n"] == 400
    return {"put": _rate(N_DOCS, put), "get": _rate(N_DOCS, get),
            "query_equality": {"rows": len(rows), "seconds": round(query, 4)},
            "contended_transactions_4x100": _rate(400, tx)}


def _bus(folder: Path) -> dict:
    bus = SqliteMessageBus(folder / "bus.db")
    bus.ensure_subscription(SubscriptionSpec("bench-sub", "bench", "bench-dead-letter"))
    start = time.perf_counter()
    for i in range(N_MESSAGES):
        bus.publish("bench", b"{}", {"i": str(i)})
    publish = time.perf_counter() - start
    seen = 0

    def handler(_message) -> None:
        nonlocal seen
        seen += 1

    start = time.perf_counter()
    while seen < N_MESSAGES:
        if not bus.pull("bench-sub", handler, max_messages=100):
            break
    deliver = time.perf_counter() - start
    assert seen == N_MESSAGES
    return {"publish": _rate(N_MESSAGES, publish), "pull_and_ack": _rate(N_MESSAGES, deliver)}


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="keyway-bench-") as tmp:
        folder = Path(tmp)
        return {"document_store": _store(folder), "message_bus": _bus(folder)}
