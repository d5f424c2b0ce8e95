"""Tampering the chain's own MACs cannot reveal: added fields, a deleted chain, a dropped tail
with the head rolled back — each caught by the full-field MAC or by the checkpoints."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from shared.audit import CHECKPOINTS, ENTRIES, HEADS, KEY_SECRET, AuditLog, from_log_lines, verify
from shared.audit.chain import entry_id
from shared.audit.checkpoint import LOG_KEY
from shared.bootstrap import build
from shared.config import Config
from shared.log import JsonFormatter
from shared.ports import Ports

CHAIN = "vault-github"


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))


def _append(ports: Ports, n: int) -> list[dict]:
    log = AuditLog(ports.business, ports.secrets, ports.clock, CHAIN)
    return [log.append("release", requester="scheduler", recipient="fetch-github",
                       purpose="fetch", connection=f"c-{i}", outcome="released")
            for i in range(n)]


def _delete_chain(ports: Ports, *, checkpoint_too: bool = False) -> None:
    for snapshot in ports.business.query(ENTRIES):
        ports.business.delete(ENTRIES, snapshot.id)
    ports.business.delete(HEADS, CHAIN)
    if checkpoint_too:
        ports.business.delete(CHECKPOINTS, CHAIN)


def _roll_back(ports: Ports, entries: list[dict], to: int) -> None:
    for entry in entries[to:]:
        ports.business.delete(ENTRIES, entry_id(CHAIN, entry["seq"]))
    ports.business.put(HEADS, CHAIN, {"seq": to, "mac": entries[to - 1]["mac"]})


def test_an_added_field_fails_verification(ports: Ports) -> None:
    _append(ports, 3)
    doc_id = entry_id(CHAIN, 2)
    ports.business.put(ENTRIES, doc_id, {**ports.business.get(ENTRIES, doc_id),
                                         "approved_by": "nobody"})
    result = verify(ports.business, ports.secrets, CHAIN)
    assert (result.ok, result.reason, result.seq) == (False, "audit.entry_altered", 2)
    assert "nobody" not in result.problem


def test_a_removed_field_fails_verification(ports: Ports) -> None:
    _append(ports, 2)
    doc_id = entry_id(CHAIN, 1)
    entry = ports.business.get(ENTRIES, doc_id)
    del entry["detail"]
    ports.business.put(ENTRIES, doc_id, entry)
    result = verify(ports.business, ports.secrets, CHAIN)
    assert (result.ok, result.reason, result.seq) == (False, "audit.entry_altered", 1)


def test_a_deleted_chain_and_head_fail_verification(ports: Ports) -> None:
    _append(ports, 3)
    _delete_chain(ports)
    result = verify(ports.business, ports.secrets, CHAIN)
    assert (result.ok, result.reason, result.checked) == (False, "audit.chain_deleted", 0)


def test_a_dropped_tail_with_a_rolled_back_head_fails_verification(ports: Ports) -> None:
    entries = _append(ports, 5)
    _roll_back(ports, entries, 3)
    result = verify(ports.business, ports.secrets, CHAIN)
    assert (result.ok, result.reason, result.checked) == (False, "audit.head_rolled_back", 3)
    assert "4-5" in result.problem


def test_a_rewritten_tail_does_not_match_its_checkpoint(ports: Ports) -> None:
    """The writer (who holds the audit key) drops entry 3 and appends a different entry 3."""
    entries = _append(ports, 3)
    checkpoint = ports.business.get(CHECKPOINTS, CHAIN)
    _roll_back(ports, entries, 2)
    ports.business.delete(CHECKPOINTS, CHAIN)
    _append(ports, 1)  # a new entry 3
    result = verify(ports.business, ports.secrets, CHAIN,
                    checkpoints=from_log_lines([json.dumps(
                        {"message": LOG_KEY, "chain": CHAIN, "seq": 3,
                         "head": checkpoint["head"]})]))
    assert (result.ok, result.reason, result.seq) == (False, "audit.checkpoint_mismatch", 3)


def test_a_forged_checkpoint_fails_verification(ports: Ports) -> None:
    _append(ports, 3)
    record = ports.business.get(CHECKPOINTS, CHAIN)
    ports.business.put(CHECKPOINTS, CHAIN, {**record, "seq": 2})
    result = verify(ports.business, ports.secrets, CHAIN)
    assert (result.ok, result.reason) == (False, "audit.checkpoint_invalid")


def test_the_checkpoint_goes_to_the_log_stream_without_secrets(
        ports: Ports, caplog: pytest.LogCaptureFixture, leak_guard) -> None:
    ports.secrets.add_version(KEY_SECRET, os.urandom(32))
    leak_guard.track(ports.secrets.access(KEY_SECRET))
    with caplog.at_level(logging.INFO, logger="keyway.audit"):
        entries = _append(ports, 2)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.getMessage() == LOG_KEY]
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert json.loads(lines[-1])["head"] == entries[-1]["mac"]
    assert set(json.loads(lines[-1])) >= {"chain", "seq", "head"}
    anchors = from_log_lines(lines)
    assert [(a.chain, a.seq, a.source) for a in anchors] == [(CHAIN, 1, "log"), (CHAIN, 2, "log")]


def test_the_log_stream_catches_a_chain_deleted_with_its_checkpoint(ports: Ports,
                                                                      caplog) -> None:
    with caplog.at_level(logging.INFO, logger="keyway.audit"):
        _append(ports, 2)
    exported = [json.dumps({"jsonPayload": json.loads(JsonFormatter().format(r))})
                for r in caplog.records if r.getMessage() == LOG_KEY]
    _delete_chain(ports, checkpoint_too=True)
    assert verify(ports.business, ports.secrets, CHAIN).ok  # nothing left in the store
    result = verify(ports.business, ports.secrets, CHAIN, checkpoints=from_log_lines(exported))
    assert (result.ok, result.reason) == (False, "audit.chain_deleted")


def test_a_chain_written_before_checkpoints_existed_still_verifies(ports: Ports) -> None:
    _append(ports, 3)
    ports.business.delete(CHECKPOINTS, CHAIN)  # what a chain from before this change looks like
    assert verify(ports.business, ports.secrets, CHAIN).ok
    _append(ports, 1)  # its next append writes the first checkpoint
    assert ports.business.get(CHECKPOINTS, CHAIN)["seq"] == 4
    assert verify(ports.business, ports.secrets, CHAIN).ok
