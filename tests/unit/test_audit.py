"""The audit chain on the real embedded adapters: appends verify; every kind of tampering shows."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from shared.audit import ENTRIES, HEADS, KEY_SECRET, AuditLog, chains, verify
from shared.audit.chain import GENESIS_MAC, canonical, entry_id
from shared.bootstrap import build
from shared.config import Config
from shared.errors import Conflict, InvalidInput
from shared.ports import Ports

CHAIN = "vault-github"
TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    """Fresh embedded ports (SQLite stores, local secrets file) in a temporary state dir."""
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))


def _log(ports: Ports, chain: str = CHAIN) -> AuditLog:
    return AuditLog(ports.business, ports.secrets, ports.clock, chain)


def _append(log: AuditLog, n: int, outcome: str = "ok") -> list[dict]:
    """``n`` token releases with distinct connections."""
    return [
        log.append("vault.token_released", requester="scheduler", recipient="fetch-github",
                   purpose="fetch", connection=f"c-{i}", outcome=outcome, detail=f"run {i}")
        for i in range(n)
    ]


def _verify(ports: Ports, chain: str = CHAIN, **kwargs):
    return verify(ports.business, ports.secrets, chain, **kwargs)


def test_appended_entries_form_a_verified_chain(ports: Ports) -> None:
    entries = _append(_log(ports), 3)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev_mac"] == GENESIS_MAC
    assert entries[1]["prev_mac"] == entries[0]["mac"]
    stored = ports.business.get(ENTRIES, entry_id(CHAIN, 2))
    assert stored == entries[1]
    assert stored["chain"] == CHAIN and stored["time"].endswith("Z")
    assert ports.business.get(HEADS, CHAIN) == {"seq": 3, "mac": entries[2]["mac"]}
    result = _verify(ports)
    assert (result.ok, result.checked, result.problem, result.seq) == (True, 3, None, None)
    assert chains(ports.business) == [CHAIN]


def test_the_audit_key_is_created_once_and_reused(ports: Ports) -> None:
    _append(_log(ports), 1)
    key = ports.secrets.access(KEY_SECRET)
    assert len(key) == 32
    _append(_log(ports), 1)  # a second instance (another process) uses the same key
    assert ports.secrets.access(KEY_SECRET) == key
    assert _verify(ports).ok


def test_an_empty_chain_verifies(ports: Ports) -> None:
    assert _verify(ports) == _verify(ports, "api")
    assert _verify(ports).ok and _verify(ports).checked == 0


def test_chains_are_independent(ports: Ports) -> None:
    _append(_log(ports), 2)
    _append(_log(ports, "vault-gitlab"), 3)
    assert chains(ports.business) == [CHAIN, "vault-gitlab"]
    assert _verify(ports).checked == 2
    assert _verify(ports, "vault-gitlab").checked == 3


def test_an_edited_entry_is_detected(ports: Ports) -> None:
    _append(_log(ports), 3)
    doc_id = entry_id(CHAIN, 2)
    entry = ports.business.get(ENTRIES, doc_id)
    ports.business.put(ENTRIES, doc_id, {**entry, "outcome": "denied"})
    result = _verify(ports)
    assert not result.ok and result.seq == 2 and result.checked == 1
    assert "MAC" in result.problem


def test_a_deleted_middle_entry_is_detected(ports: Ports) -> None:
    _append(_log(ports), 4)
    ports.business.delete(ENTRIES, entry_id(CHAIN, 2))
    result = _verify(ports)
    assert not result.ok and result.seq == 2 and "missing" in result.problem


def test_a_deleted_last_entry_is_detected(ports: Ports) -> None:
    _append(_log(ports), 3)
    ports.business.delete(ENTRIES, entry_id(CHAIN, 3))
    result = _verify(ports)
    assert not result.ok and result.checked == 2 and result.seq == 3
    assert "missing" in result.problem


def test_an_edited_head_is_detected(ports: Ports) -> None:
    entries = _append(_log(ports), 3)
    ports.business.put(HEADS, CHAIN, {"seq": 3, "mac": entries[1]["mac"]})
    assert _verify(ports).problem == "the head does not match the last entry"
    ports.business.put(HEADS, CHAIN, {"seq": 2, "mac": entries[1]["mac"]})
    assert _verify(ports).problem == "the head is behind the entries"
    ports.business.delete(HEADS, CHAIN)
    assert _verify(ports).problem == "the head is missing"


def test_an_entry_rehashed_without_the_key_is_detected(ports: Ports) -> None:
    """An attacker without the secret edits entry 2 and rebuilds the chain with plain SHA-256."""
    _append(_log(ports), 4)
    prev_mac = ports.business.get(ENTRIES, entry_id(CHAIN, 1))["mac"]
    for seq in (2, 3, 4):
        entry = ports.business.get(ENTRIES, entry_id(CHAIN, seq))
        entry["prev_mac"] = prev_mac
        if seq == 2:
            entry["outcome"] = "denied"
        entry["mac"] = hashlib.sha256(prev_mac.encode() + b"\n" + canonical(entry)).hexdigest()
        ports.business.put(ENTRIES, entry_id(CHAIN, seq), entry)
        prev_mac = entry["mac"]
    ports.business.put(HEADS, CHAIN, {"seq": 4, "mac": prev_mac})
    result = _verify(ports)
    assert not result.ok and result.seq == 2 and "MAC" in result.problem


def test_swapped_entries_are_detected(ports: Ports) -> None:
    _append(_log(ports), 3)
    first = ports.business.get(ENTRIES, entry_id(CHAIN, 1))
    second = ports.business.get(ENTRIES, entry_id(CHAIN, 2))
    ports.business.put(ENTRIES, entry_id(CHAIN, 1), {**second, "seq": 1})
    ports.business.put(ENTRIES, entry_id(CHAIN, 2), {**first, "seq": 2})
    result = _verify(ports)
    assert not result.ok and result.seq == 1


@pytest.mark.parametrize("copied_to", ["zzz-inserted", f"{CHAIN}-000000000004x"])
def test_an_inserted_copy_is_detected_even_on_a_page_boundary(ports: Ports,
                                                              copied_to: str) -> None:
    _append(_log(ports), 5)
    assert _verify(ports, page_size=2).ok
    ports.business.put(ENTRIES, copied_to, ports.business.get(ENTRIES, entry_id(CHAIN, 4)))
    for page_size in (2, 3, 200):
        result = _verify(ports, page_size=page_size)
        assert not result.ok and result.seq in (4, 5), page_size


def test_an_append_never_overwrites_an_entry_when_the_head_was_rolled_back(ports: Ports) -> None:
    entries = _append(_log(ports), 3)
    ports.business.put(HEADS, CHAIN, {"seq": 2, "mac": entries[1]["mac"]})
    with pytest.raises(Conflict):
        _append(_log(ports), 1)
    assert ports.business.get(ENTRIES, entry_id(CHAIN, 3)) == entries[2]


@pytest.mark.parametrize("field", ["detail", "purpose", "requester"])
def test_a_token_shaped_value_is_refused_and_nothing_is_written(ports: Ports, field: str) -> None:
    values = {"requester": "api", "recipient": None, "purpose": "action", "connection": "c-1",
              "outcome": "ok", "detail": ""}
    values[field] = f"released {TOKEN} to act-github"
    with pytest.raises(InvalidInput) as raised:
        _log(ports).append("vault.token_released", **values)
    assert TOKEN not in str(raised.value) and field in str(raised.value)
    assert ports.business.query(ENTRIES) == [] and ports.business.get(HEADS, CHAIN) is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"outcome": ""}, "must not be empty"),
    ({"detail": "x" * 501}, "longer than 500"),
    ({"connection": 42}, "must be a string"),
    ({"detail": "refresh_token=abcdef123456"}, "looks like"),
])
def test_invalid_fields_are_refused(ports: Ports, changes: dict, message: str) -> None:
    values = {"requester": "api", "recipient": None, "purpose": None, "connection": None,
              "outcome": "ok", **changes}
    with pytest.raises(InvalidInput, match=message):
        _log(ports).append("api.action_requested", **values)
    with pytest.raises(InvalidInput):
        AuditLog(ports.business, ports.secrets, ports.clock, "Bad/Chain")


def test_concurrent_appends_keep_one_contiguous_chain(ports: Ports) -> None:
    """Eight appenders, each with its own AuditLog (and so its own first use of the key)."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            log = _log(ports)
            start.wait()
            for i in range(5):
                log.append("sync.requested", requester=f"worker-{n}", recipient=None,
                           purpose=None, connection=f"c-{n}-{i}", outcome="ok")
        except BaseException as e:  # surfaced below, in the test thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(s.data["seq"] for s in ports.business.query(ENTRIES))
    assert seqs == list(range(1, 41))
    result = _verify(ports, page_size=7)
    assert result.ok and result.checked == 40
