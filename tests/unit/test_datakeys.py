"""Per-component data keys: stored only wrapped, versioned, rotated, retired, counted, and
never shown — proven against the real embedded adapters (SQLite vault store, local KMS,
local secrets file)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import logging
import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.bootstrap import build
from shared.config import Config
from shared.crypto.datakeys import (
    COLLECTION,
    METADATA_TTL,
    DataKeyring,
    secret_name,
    wrap_associated_data,
)
from shared.errors import Conflict, CryptoError, InvalidInput, NotFound, UnavailableError
from shared.ports import KeyService, Ports
from tests.support import FakeClock

COMPONENT = "vault-github"


class DownKeyService:
    """A KeyService whose backend is down: every call raises ``UnavailableError``."""

    def _down(self, *args: object, **kwargs: object) -> bytes:
        raise UnavailableError("kms is down")

    ensure_key = encrypt = decrypt = rotate = primary_version = _down


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ports(tmp_path: Path, clock: FakeClock) -> Iterator[Ports]:
    built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}), clock=clock)
    yield built
    for store in (built.business, built.vault):
        store.close()


def _down(ports: Ports) -> Ports:
    down = DownKeyService()
    assert isinstance(down, KeyService)
    return dataclasses.replace(ports, keys=down)


def _encodings(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]


def _messages(error: BaseException) -> str:
    """Every message along an exception's cause/context chain."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_first_use_creates_version_1_as_the_primary(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    assert keyring.versions() == {}
    version, key = keyring.primary()
    assert version == 1 and len(key) == 32
    info = keyring.versions()[1]
    assert info["state"] == "active" and info["secret_version"] == "1"
    assert info["encryptions_reserved"] == 0 and info["created_at"].startswith("2030-01-01T")
    assert ports.vault.get(COLLECTION, COMPONENT)["primary"] == 1


def test_data_key_is_stored_only_wrapped(ports: Ports, tmp_path: Path) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    _, key = keyring.primary()
    keyring.reserve()
    stored = ports.secrets.access(secret_name(COMPONENT), "1")
    assert stored != key and key not in stored
    unwrapped = ports.keys.decrypt(COMPONENT, stored, wrap_associated_data(COMPONENT, 1))
    assert unwrapped == key  # wrapped by the component's own KMS key, bound to version 1
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"secrets.json", "vault.db", f"{COMPONENT}.json"} <= names
    for path in files:  # secrets file, vault db (and its WAL), key dir, everything
        content = path.read_bytes()
        assert not any(e in content for e in _encodings(key)), path


def test_each_component_has_its_own_data_key(ports: Ports) -> None:
    github, gitlab = DataKeyring("vault-github", ports), DataKeyring("vault-gitlab", ports)
    assert github.primary()[1] != gitlab.primary()[1]
    assert ports.secrets.access("vault-gitlab-data-key", "1") != ports.secrets.access(
        "vault-github-data-key", "1")


def test_rotation_makes_a_new_primary_and_keeps_old_versions_readable(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    _, first = keyring.primary()
    assert keyring.rotate() == 2
    version, second = keyring.primary()
    assert version == 2 and second != first
    assert keyring.key(1) == first and keyring.key(2) == second
    assert keyring.reserve()[0] == 2
    fresh = DataKeyring(COMPONENT, ports)  # a new instance unwraps both from the stores
    assert fresh.key(1) == first and fresh.key(2) == second


def test_retired_versions_are_unreadable(ports: Ports, clock: FakeClock) -> None:
    keyring, other = DataKeyring(COMPONENT, ports), DataKeyring(COMPONENT, ports)
    keyring.primary()
    other.key(1)  # cached in another instance
    keyring.rotate()
    keyring.retire(1)
    keyring.retire(1)  # idempotent
    with pytest.raises(CryptoError):
        keyring.key(1)
    with pytest.raises(CryptoError):
        DataKeyring(COMPONENT, ports).key(1)
    clock.advance(METADATA_TTL)  # the other instance notices within the metadata TTL
    with pytest.raises(CryptoError):
        other.key(1)
    assert keyring.versions()[1]["state"] == "retired" and keyring.key(2)


def test_retiring_the_primary_or_an_unknown_version_is_refused(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    keyring.primary()
    with pytest.raises(Conflict):
        keyring.retire(1)
    with pytest.raises(NotFound):
        keyring.retire(7)
    with pytest.raises(InvalidInput):
        keyring.retire(0)
    assert keyring.key(1)


@pytest.mark.parametrize("version", [0, -1, 99, True, "1", None])
def test_unknown_versions_are_crypto_errors(ports: Ports, version: object) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    keyring.primary()
    with pytest.raises(CryptoError):
        keyring.key(version)  # type: ignore[arg-type]


def test_encryptions_are_reserved_in_blocks(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports, reserve_block=4)
    assert keyring.reserve()[0] == 1
    assert keyring.versions()[1]["encryptions_reserved"] == 4
    for _ in range(3):
        keyring.reserve()
    assert keyring.versions()[1]["encryptions_reserved"] == 4
    keyring.reserve()
    assert keyring.versions()[1]["encryptions_reserved"] == 8


def test_auto_rotation_happens_before_the_limit_is_passed(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    keyring = DataKeyring(COMPONENT, ports, rotate_after=10, reserve_block=4)
    with caplog.at_level(logging.INFO, logger="shared.crypto.datakeys"):
        used = [keyring.reserve()[0] for _ in range(25)]
    assert used == [1] * 10 + [2] * 10 + [3] * 5
    infos = keyring.versions()
    assert all(info["encryptions_reserved"] <= 10 for info in infos.values())
    assert infos[1]["encryptions_reserved"] == infos[2]["encryptions_reserved"] == 10
    rotated = [r for r in caplog.records if r.getMessage() == "crypto.data_key_rotated"]
    assert [r.fields["version"] for r in rotated] == [2, 3]
    assert all(r.fields["reason"] == "limit" for r in rotated)
    for version in (1, 2, 3):
        key = keyring.key(version)
        assert not any(e.decode("latin-1") in caplog.text for e in _encodings(key))


def test_two_instances_see_each_others_rotation(ports: Ports, clock: FakeClock) -> None:
    first, second = DataKeyring(COMPONENT, ports), DataKeyring(COMPONENT, ports)
    assert first.reserve()[0] == 1
    assert second.rotate() == 2
    assert first.key(2) == second.key(2)  # an unknown version makes it re-read at once
    assert first.rotate() == 3
    assert second.key(3) == first.key(3)
    clock.advance(METADATA_TTL)  # new writes follow the other's rotation within the TTL
    assert second.reserve()[0] == 3
    assert sorted(first.versions()) == [1, 2, 3]


def _race(workers: int, task: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(workers)
    results: list[object] = [None] * workers

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = task(index)
        except Exception as e:  # surfaced by the assertion below
            results[index] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_first_use_creates_exactly_one_version_1(ports: Ports) -> None:
    keyrings = [DataKeyring(COMPONENT, ports) for _ in range(8)]
    results = _race(8, lambda i: keyrings[i].primary())
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len(set(results)) == 1 and results[0][0] == 1  # type: ignore[index]
    infos = keyrings[0].versions()
    assert list(infos) == [1]
    winner = ports.secrets.access(secret_name(COMPONENT), infos[1]["secret_version"])
    key = ports.keys.decrypt(COMPONENT, winner, wrap_associated_data(COMPONENT, 1))
    assert results[0] == (1, key)


def test_one_instance_shared_by_threads_reserves_one_block(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    results = _race(8, lambda i: keyring.reserve())
    assert len(set(results)) == 1 and results[0][0] == 1  # type: ignore[index]
    assert keyring.versions()[1]["encryptions_reserved"] == 4096


class CountingLock:
    """An RLock that counts how often it is taken."""

    def __init__(self) -> None:
        self._inner, self.taken = threading.RLock(), 0

    def __enter__(self) -> None:
        self._inner.acquire()
        self.taken += 1

    def __exit__(self, *exc: object) -> None:
        self._inner.release()


def test_a_cached_key_and_a_use_inside_a_block_take_no_lock(ports: Ports, clock: FakeClock
                                                            ) -> None:
    keyring = DataKeyring(COMPONENT, ports, reserve_block=100)
    version, key = keyring.reserve()
    keyring._lock = lock = CountingLock()  # type: ignore[assignment]
    for _ in range(50):
        assert keyring.reserve() == (version, key) and keyring.key(version) == key
    assert lock.taken == 0
    clock.advance(METADATA_TTL)  # stale: the next call re-reads under the lock, once
    assert keyring.key(version) == key and keyring.reserve() == (version, key)
    assert lock.taken == 1


def test_threads_spend_no_more_uses_than_were_reserved(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports, rotate_after=1000, reserve_block=7)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        results = _race(8, lambda i: [keyring.reserve()[0] for _ in range(400)])
    finally:
        sys.setswitchinterval(interval)
    assert not [r for r in results if isinstance(r, BaseException)], results
    used: dict[int, int] = {}
    for versions in results:
        for version in versions:  # type: ignore[union-attr]
            used[version] = used.get(version, 0) + 1
    assert sum(used.values()) == 3200
    infos = keyring.versions()
    assert all(used[v] <= infos[v]["encryptions_reserved"] <= 1000 for v in used)
    assert sorted(used) == [1, 2, 3, 4]  # rotated every 1,000 uses


def test_kms_outage_on_first_use_fails_closed(ports: Ports, tmp_path: Path) -> None:
    keyring = DataKeyring(COMPONENT, _down(ports))
    for call in (keyring.primary, keyring.reserve, keyring.rotate):
        with pytest.raises(UnavailableError) as info:
            call()
        assert info.value.retryable
    assert ports.vault.query(COLLECTION) == []
    assert not (tmp_path / "secrets.json").exists()


def test_kms_outage_later_fails_closed_and_writes_nothing(ports: Ports) -> None:
    healthy = DataKeyring(COMPONENT, ports)
    healthy.reserve()
    before = copy.deepcopy(ports.vault.get(COLLECTION, COMPONENT))
    keyring = DataKeyring(COMPONENT, _down(ports))
    for call in (keyring.reserve, keyring.rotate, lambda: keyring.key(1)):
        with pytest.raises(UnavailableError):
            call()
    assert ports.vault.get(COLLECTION, COMPONENT) == before
    with pytest.raises(NotFound):
        ports.secrets.access(secret_name(COMPONENT), "2")


def test_a_key_that_fails_to_unwrap_is_a_crypto_error(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    keyring.primary()
    keyring.rotate()
    meta = ports.vault.get(COLLECTION, COMPONENT)
    meta["versions"]["2"]["secret_version"] = "1"  # version 1's wrapped key, bound to 1
    ports.vault.put(COLLECTION, COMPONENT, meta)
    with pytest.raises(CryptoError):
        DataKeyring(COMPONENT, ports).key(2)
    meta["versions"]["2"]["secret_version"] = "99"  # a wrapped key that is gone
    ports.vault.put(COLLECTION, COMPONENT, meta)
    with pytest.raises(CryptoError):
        DataKeyring(COMPONENT, ports).key(2)
    ports.secrets.add_version(secret_name(COMPONENT), b"not a wrapped key at all")
    meta["versions"]["2"]["secret_version"] = "3"
    ports.vault.put(COLLECTION, COMPONENT, meta)
    with pytest.raises(CryptoError):
        DataKeyring(COMPONENT, ports).key(2)


def test_key_material_is_refused_in_repr_and_pickle(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    _, key = keyring.primary()
    text = repr(keyring)
    assert text == "DataKeyring(component='vault-github', cached_versions=[1])"
    assert str(keyring) == text
    assert not any(e.decode("latin-1") in text for e in _encodings(key)) and repr(key) not in text
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            dump(keyring)


def test_the_unwrapped_key_appears_in_no_exception_message(ports: Ports) -> None:
    keyring = DataKeyring(COMPONENT, ports)
    _, key = keyring.primary()
    calls: list[Callable[[], object]] = [
        lambda: keyring.retire(1), lambda: keyring.retire(5), lambda: keyring.key(42),
        lambda: DataKeyring(COMPONENT, _down(ports)).key(1), lambda: pickle.dumps(keyring),
    ]
    for call in calls:
        with pytest.raises(Exception) as info:  # noqa: B017 - each raises its own kind
            call()
        text = _messages(info.value)
        assert not any(e.decode("latin-1") in text for e in _encodings(key)), text
        assert repr(key) not in text


@pytest.mark.parametrize("kwargs", [
    {"component": "Vault_GitHub"}, {"component": ""}, {"component": "a" * 64},
    {"rotate_after": 0}, {"rotate_after": 2**32}, {"reserve_block": 0},
    {"rotate_after": 1.5},
])
def test_invalid_arguments_are_refused(ports: Ports, kwargs: dict[str, object]) -> None:
    component = kwargs.pop("component", COMPONENT)
    with pytest.raises(InvalidInput):
        DataKeyring(component, ports, **kwargs)  # type: ignore[arg-type]
