"""The webhook pipeline's parts: the size cap reads no further than it must, signatures are
checked in constant time over the raw bytes with the current and the previous secret, and a
delivery id is claimed once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.adapters.embedded.local_secrets import LocalSecretSource
from shared.bootstrap import build
from shared.config import Config
from shared.errors import ConfigError
from shared.topology import subscription_specs
from shared.webhooks import deliveries, signatures
from shared.webhooks.body import read_capped
from shared.webhooks.errors import Unauthorized
from shared.webhooks.pipeline import Receiver
from shared.webhooks.secrets import SecretCache, connection_secret_name, fetch
from tests.support import FakeClock

BODY = b'{"action":"opened"}'


class CountingStream:
    """A request body of ``size`` bytes that are produced only when read (and counted)."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.read_bytes if n < 0 else min(n, self.size - self.read_bytes)
        self.read_bytes += n
        return b"x" * n


# ---- size cap ---------------------------------------------------------------------------
def test_a_declared_oversized_body_is_refused_before_a_byte_is_read():
    stream = CountingStream(10_000)
    assert read_capped(stream, 10_000, 1_000) is None
    assert stream.read_bytes == 0


def test_an_undeclared_oversized_body_is_read_one_byte_past_the_cap_and_no_further():
    stream = CountingStream(10_000_000)
    assert read_capped(stream, None, 200_000) is None
    assert stream.read_bytes == 200_001


def test_a_body_at_the_cap_is_read_whole():
    assert read_capped(CountingStream(1_000), None, 1_000) == b"x" * 1_000
    assert read_capped(CountingStream(0), 0, 1_000) == b""


# ---- signatures -------------------------------------------------------------------------
def github_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_github_signatures_verify_only_the_exact_body_under_a_known_secret():
    secret, other = b"current-secret", b"previous-secret"
    header = github_signature(secret, BODY)
    assert signatures.hmac_hex(BODY, header, "sha256=", [other, secret])
    assert not signatures.hmac_hex(BODY + b" ", header, "sha256=", [secret])
    assert not signatures.hmac_hex(BODY, header, "sha256=", [b"unrelated-secret"])
    assert not signatures.hmac_hex(BODY, header.removeprefix("sha256="), "sha256=", [secret])
    assert not signatures.hmac_hex(BODY, "sha256=ünïcode", "sha256=", [secret])


def test_gitlab_tokens_compare_to_each_known_secret():
    assert signatures.token("tok-current", [b"tok-previous", b"tok-current"])
    assert not signatures.token("tok-wrong", [b"tok-current"])
    assert not signatures.token("", [b"tok-current"])


def standard_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def test_gitlab_signed_format_uses_the_decoded_whsec_key_and_any_listed_signature():
    key = b"k" * 32
    secret = b"whsec_" + base64.b64encode(key)
    good = standard_signature(key, "msg_1", "1700000000", BODY)
    header = f"v1,bm9wZQ== {good}"
    assert signatures.standard(BODY, "msg_1", "1700000000", header, [secret])
    assert not signatures.standard(BODY, "msg_2", "1700000000", header, [secret])
    assert not signatures.standard(BODY, "msg_1", "1700000001", header, [secret])
    assert not signatures.standard(b"{}", "msg_1", "1700000000", header, [secret])
    plain = standard_signature(b"plain-secret", "msg_1", "1", BODY)
    assert signatures.standard(BODY, "msg_1", "1", plain, [b"plain-secret"])


def test_signed_timestamps_have_a_five_minute_tolerance():
    assert signatures.fresh("1000", 1300) and signatures.fresh("1300", 1000)
    assert not signatures.fresh("1000", 1301) and not signatures.fresh("1301", 1000)
    assert not signatures.fresh("-5", 0) and not signatures.fresh("12a", 12)


# ---- secrets ----------------------------------------------------------------------------
class CountingSource(LocalSecretSource):
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        super().__init__(path, env=env)
        self.calls = 0

    def access(self, name: str, version: str = "latest") -> bytes:
        self.calls += 1
        return super().access(name, version)


def test_the_current_and_the_previous_secret_both_verify_during_a_rotation(tmp_path):
    source = LocalSecretSource(tmp_path / "s.json", env={
        "KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET": "new-value-123",
        "KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET_PREVIOUS": "old-value-123"})
    assert fetch(source, "github-webhook-secret") == (b"new-value-123", b"old-value-123")
    assert fetch(source, "gitlab-webhook-secret") == ()


def test_secrets_are_cached_and_refetched_after_a_failure_only_when_not_fresh(tmp_path):
    env = {"KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET": "value-one-1"}
    source, clock, cache = CountingSource(tmp_path / "s.json", env), FakeClock(), SecretCache()
    assert cache.candidates(source, clock, "github-webhook-secret") == (b"value-one-1",)
    calls = source.calls
    assert cache.candidates(source, clock, "github-webhook-secret") == (b"value-one-1",)
    assert source.calls == calls
    env["KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET"] = "value-two-2"
    assert cache.refreshed(source, clock, "github-webhook-secret") is None  # too recent
    clock.advance(6)
    assert cache.refreshed(source, clock, "github-webhook-secret") == (b"value-two-2",)
    assert "value" not in repr(cache)
    with pytest.raises(TypeError):
        pickle.dumps(cache)


def test_the_cache_is_bounded_so_made_up_connection_ids_cannot_grow_it(tmp_path):
    env = {"KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET": "value-one-1"}
    source, clock = CountingSource(tmp_path / "s.json", env), FakeClock()
    cache = SecretCache(max_entries=3)
    assert cache.candidates(source, clock, "github-webhook-secret") == (b"value-one-1",)
    for n in range(10):  # misses for ids nobody registered
        assert cache.candidates(source, clock, f"webhook-secret-made-up-{n}") == ()
    assert len(cache._entries) == 3
    calls = source.calls
    assert cache.candidates(source, clock, "github-webhook-secret") == (b"value-one-1",)
    assert source.calls > calls  # evicted (oldest first), so read again


def test_a_connection_id_that_cannot_name_a_secret_is_refused():
    assert connection_secret_name("c-123_ab") == "webhook-secret-c-123_ab"
    assert connection_secret_name("../etc") is None
    assert connection_secret_name("x" * 101) is None


# ---- deliveries -------------------------------------------------------------------------
@pytest.fixture
def business(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")})).business


def test_a_delivery_is_claimed_once_and_a_released_claim_can_be_claimed_again(business):
    clock = FakeClock()
    first = deliveries.claim(business, clock, "github:d-1", {"delivery": "d-1"})
    assert first is not None and not first.reclaimed
    assert deliveries.claim(business, clock, "github:d-1", {"delivery": "d-1"}) is None
    deliveries.release(business, "github:d-1", "someone-else")  # not its claim: kept
    assert deliveries.claim(business, clock, "github:d-1", {"delivery": "d-1"}) is None
    deliveries.release(business, "github:d-1", first.owner)
    assert deliveries.claim(business, clock, "github:d-1", {"delivery": "d-1"}) is not None


def test_a_claim_older_than_the_lease_is_taken_over_once_with_its_first_arrival_time(business):
    clock = FakeClock()
    first = deliveries.claim(business, clock, "gitlab:x", {})
    clock.advance(59)
    assert deliveries.claim(business, clock, "gitlab:x", {}) is None  # within the lease
    clock.advance(2)
    taken = deliveries.claim(business, clock, "gitlab:x", {})
    assert taken is not None and taken.reclaimed and taken.owner != first.owner
    assert taken.received_at == first.received_at  # so ingest sees the same event again
    assert deliveries.claim(business, clock, "gitlab:x", {}) is None  # the new lease holds


def test_a_delivery_an_earlier_version_marked_published_stays_a_duplicate(business):
    clock = FakeClock()
    business.put(deliveries.COLLECTION, "github:old", {
        "state": "published", "owner": "o", "claimed_at": "2029-12-31T00:00:00.000000Z"})
    clock.advance(3600)
    assert deliveries.claim(business, clock, "github:old", {}) is None


class LostAnswer:
    """A store whose ``create`` commits but answers ``False``, as a create retried after its
    first attempt committed would."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def create(self, collection: str, doc_id: str, data: dict) -> bool:
        self.inner.create(collection, doc_id, data)
        return False


def test_a_create_whose_answer_was_lost_is_still_this_requests_claim(business):
    clock = FakeClock()
    claimed = deliveries.claim(LostAnswer(business), clock, "github:d-9", {})
    assert claimed is not None and not claimed.reclaimed
    assert business.get(deliveries.COLLECTION, "github:d-9")["owner"] == claimed.owner


def test_delivery_ids_are_store_safe():
    assert deliveries.normalize_id("72d3162e-cc78-11e3-81ab-4c9367dc0958", b"") == \
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert deliveries.normalize_id("a/b", b"").startswith("h-")
    assert deliveries.normalize_id(None, b"{}") == deliveries.normalize_id(None, b"{}")
    assert deliveries.doc_id("github", "d", "c-1") == "github:c-1:d"


# ---- the receiver on its own ------------------------------------------------------------
def request(path: str = "/", body: bytes = BODY, **headers: str) -> Request:
    return Request(EnvironBuilder(path=path, method="POST", data=body,
                                  headers=headers).get_environ())


def test_a_missing_app_secret_is_a_configuration_error_not_a_rejection(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    signed = request(**{"X-Hub-Signature-256": github_signature(b"whatever-secret", BODY)})
    with pytest.raises(ConfigError) as caught:
        Receiver("github")(ports, signed)
    assert caught.value.key == "webhook.github.secret_missing" and caught.value.status == 500


def test_a_gitlab_signed_delivery_is_judged_by_its_signature_alone(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    ports.secrets.add_version("gitlab-webhook-secret", b"gitlab-secret-value")
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    stamp = str(int(ports.clock.now().timestamp()))
    signature = standard_signature(b"gitlab-secret-value", "msg_9", stamp, BODY)
    signed = request(**{"webhook-id": "msg_9", "webhook-timestamp": stamp,
                        "webhook-signature": signature, "X-Gitlab-Token": "stale-token"})
    assert Receiver("gitlab")(ports, signed).status_code == 202
    tampered = request(**{"webhook-id": "msg_9", "webhook-timestamp": stamp,
                          "webhook-signature": signature,
                          "X-Gitlab-Token": "gitlab-secret-value"}, body=b"{}")
    with pytest.raises(Unauthorized):
        Receiver("gitlab")(ports, tampered)
