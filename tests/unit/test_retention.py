"""Expiring documents carry a native timestamp, the only kind a Firestore TTL policy acts on.

Every collection with a TTL policy in infra/ (``keyway.infra_export.TTL_COLLECTIONS``) is
written here by its own code, and the stored ``purge_at`` must be a timezone-aware datetime no
earlier than the moment the document stops mattering (Firestore deletes after that moment).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from keyway.infra_export import TTL_COLLECTIONS
from shared import retention
from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.crypto import replay
from shared.oauth import state
from shared.webhooks import deliveries
from tests.support import FakeClock


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteDocumentStore(tmp_path / "business.db")
    yield opened
    opened.close()


def _only(store: SqliteDocumentStore, collection: str) -> dict:
    docs = store.query(collection)
    assert len(docs) == 1
    return docs[0].data


def _ttl(doc: dict) -> datetime:
    value = doc[retention.TTL_FIELD]
    assert type(value) is datetime and value.utcoffset() == timedelta(0)
    return value


def test_webhook_deliveries_expire_after_their_retention(store) -> None:
    clock = FakeClock()
    assert deliveries.claim(store, clock, "github:d-1", {"provider": "github"})
    doc = _only(store, deliveries.COLLECTION)
    assert _ttl(doc) == clock.now() + deliveries.RETAIN
    assert doc["expires_at"] == "2030-01-31T00:00:00.000000Z"  # the string stays queryable


def test_oauth_states_expire_when_the_flow_does(store) -> None:
    clock = FakeClock()
    ports = SimpleNamespace(business=store, clock=clock)
    flow = state.PendingFlow("t1", "u1", "app", "github", "https://app.example/cb", "v" * 43,
                             None, "c1")
    value = state.create(ports, flow)
    assert _ttl(_only(store, state.COLLECTION)) == clock.now() + state.TTL
    clock.advance(state.TTL.total_seconds() + 1)
    with pytest.raises(state.InvalidState):  # the code does not wait for the TTL
        state.consume(ports, value, "github")


def test_envelope_nonces_outlive_their_envelope_by_the_grace(store) -> None:
    clock = FakeClock()
    guard = replay.ReplayGuard(store, clock, grace_seconds=60)
    expires = int(clock.now().timestamp()) + 300
    assert guard.claim("0" * 32, expires)
    purge = _ttl(_only(store, replay.COLLECTION))
    assert purge == datetime.fromtimestamp(expires, UTC) + timedelta(seconds=60)
    assert not guard.claim("0" * 32, expires)  # remembered until then
    clock.advance(300 + 61)
    assert guard.purge_expired() == 1


def test_notification_records_expire_after_their_retention(tmp_path: Path) -> None:
    """The outbox once published, each delivery and the outlet's marks."""
    from shared import acting
    from shared.bootstrap import build
    from shared.config import Config
    from shared.notify import deliver, events
    from shared.topology import outlet_topics, subscription_specs

    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    for topic in outlet_topics():
        ports.bus.ensure_topic(topic)
    with acting.acting_as("scheduler"):
        event_id = events.emit(ports, "t1", "sync.failed", "run-1", {"connection": "c1"})
    outbox = ports.business.get(events.COLLECTION, event_id)
    assert outbox["state"] == "published"
    published = datetime.fromisoformat(outbox["published_at"].replace("Z", "+00:00"))
    assert _ttl(outbox) == published + events.RETAIN
    event = outbox["event"]
    claimed = deliver._claim(ports, f"{event_id}:s1", event, "s1")
    created = datetime.fromisoformat(claimed["created_at"].replace("Z", "+00:00"))
    assert _ttl(claimed) == created + deliver.RETAIN
    deliver._forward(ports, event)
    mark = ports.business.get(deliver.OUTLET_MARKS, event_id)
    marked = datetime.fromisoformat(mark["at"].replace("Z", "+00:00"))
    assert _ttl(mark) == marked + deliver.RETAIN


def test_every_ttl_collection_is_covered_here() -> None:
    from shared.notify import deliver, events

    assert set(TTL_COLLECTIONS) == {deliveries.COLLECTION, state.COLLECTION, replay.COLLECTION,
                                    events.COLLECTION, deliver.DELIVERIES, deliver.OUTLET_MARKS}


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError):
        retention.purge_at(datetime(2030, 1, 1))
