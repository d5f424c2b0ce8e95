"""Verifying an audit chain: every entry, every link, the head, then the checkpoints.

Each problem has one stable ``reason`` (what ``keyway audit verify`` prints and scripts match)
and a text that names seqs, never a field value:

* ``audit.entry_altered`` — an entry's MAC fails, or a field was added to or removed from it;
* ``audit.entry_missing`` — a gap in the seqs, or entries after the last one the head names;
* ``audit.entry_reordered`` — a seq repeated, out of order, or an entry under the wrong id;
* ``audit.entry_unlinked`` — an entry's ``prev_mac`` is not the previous entry's MAC;
* ``audit.head_missing`` / ``audit.head_mismatch`` — the head is gone, malformed, behind the
  entries or names another MAC than the last entry's;
* ``audit.chain_deleted`` — a checkpoint exists for a chain with no entries and no head;
* ``audit.head_rolled_back`` — the chain ends before the newest checkpoint (its newest
  entries were dropped and the head rolled back to match);
* ``audit.checkpoint_mismatch`` — the entry at a checkpoint's seq is not the one checkpointed;
* ``audit.checkpoint_invalid`` — the stored checkpoint itself fails its MAC;
* ``audit.key_missing`` — entries exist but the audit key does not;
* ``audit.chain_growing`` — the chain kept growing faster than it could be walked.

On Firestore, the entry query needs the composite index ``audit_entries (chain ASC, seq ASC)``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.audit import checkpoint
from shared.audit.chain import (
    ENTRIES,
    FIELDS,
    GENESIS_MAC,
    HEADS,
    check_chain,
    entry_id,
    entry_mac,
    read_key,
)
from shared.errors import InvalidInput
from shared.ports import DocumentStore, Filter, Order, SecretSource, Snapshot

PAGE_SIZE = 200
_MAX_ROUNDS = 100


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``checked`` entries were sound; ``reason`` (a stable key) and
    ``problem`` (text, never a field value) name the first inconsistency, ``seq`` where."""

    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    reason: str | None = None


class _Problem(Exception):
    def __init__(self, reason: str, text: str, seq: int | None) -> None:
        super().__init__(reason)
        self.reason, self.text, self.seq = reason, text, seq


def verify(store: DocumentStore, secrets: SecretSource, chain: str, *,
           page_size: int = PAGE_SIZE,
           checkpoints: Iterable[checkpoint.Checkpoint] = ()) -> VerifyResult:
    """Walk ``chain`` in seq order and check every MAC, link and seq, then the head, then the
    stored checkpoint and ``checkpoints`` (e.g. read from the log stream) of this chain.

    Entries appended while the walk runs are followed until the walk catches up with the head.
    """
    key = read_key(secrets)
    walk = _Walk(check_chain(chain), key)
    try:
        anchors = _anchors(store, key, chain, checkpoints)
        walk.wanted = {a.seq for a in anchors}
        for _ in range(_MAX_ROUNDS):
            before = walk.checked
            _walk_entries(store, walk, page_size)
            if walk.check_head(store.get(HEADS, chain), walk.checked > before):
                walk.check_anchors(anchors)
                return VerifyResult(ok=True, checked=walk.checked)
        raise _Problem("audit.chain_growing", "the chain kept growing", None)
    except _Problem as p:
        return VerifyResult(ok=False, checked=walk.checked, problem=p.text, seq=p.seq,
                            reason=p.reason)


def chains(store: DocumentStore) -> list[str]:
    """The names of every audit chain that has a head or a checkpoint."""
    return sorted({snapshot.id for snapshot in store.query(HEADS)} | checkpoint.chains(store))


def _anchors(store: DocumentStore, key: bytes | None, chain: str,
             extra: Iterable[checkpoint.Checkpoint]) -> list[checkpoint.Checkpoint]:
    if key is None and store.get(checkpoint.CHECKPOINTS, chain) is not None:
        raise _Problem("audit.key_missing", "the audit key is missing", None)
    try:
        stored = checkpoint.read(store, key, chain)
    except checkpoint.InvalidCheckpoint:
        raise _Problem("audit.checkpoint_invalid", "the stored checkpoint fails its MAC",
                       None) from None
    anchors = [c for c in extra if c.chain == chain]
    return ([stored] if stored else []) + anchors


class _Walk:
    """The state of one verification: how far the chain has been checked."""

    def __init__(self, chain: str, key: bytes | None) -> None:
        self.chain, self.key = chain, key
        self.last_seq, self.last_id, self.prev_mac, self.checked = 0, "", GENESIS_MAC, 0
        self.wanted: set[int] = set()  # the seqs checkpoints name
        self.seen: dict[int, str] = {}  # their MACs, as found in the chain

    def step(self, snapshot: Snapshot) -> None:
        """Check the next entry in seq order and advance; raise :class:`_Problem`."""
        if snapshot.id == self.last_id:
            return  # the previous page's last entry, fetched again on purpose
        entry, expected = snapshot.data, self.last_seq + 1
        seq = entry.get("seq")
        if type(seq) is not int:
            raise _Problem("audit.entry_reordered",
                           "a document with a non-integer seq is in the chain", expected)
        if seq != expected:
            if seq < expected:
                raise _Problem("audit.entry_reordered",
                               f"entry {expected}: duplicated or reordered", expected)
            raise _Problem("audit.entry_missing", f"entry {expected}: missing (next is {seq})",
                           expected)
        if snapshot.id != entry_id(self.chain, seq):
            raise _Problem("audit.entry_reordered", f"entry {seq}: stored under the wrong id", seq)
        if entry.get("prev_mac") != self.prev_mac:
            raise _Problem("audit.entry_unlinked",
                           f"entry {seq}: does not link to the previous entry", seq)
        if self.key is None:
            raise _Problem("audit.key_missing", "the audit key is missing", seq)
        self._check_mac(seq, entry)
        self.last_seq, self.last_id, self.prev_mac = seq, snapshot.id, entry["mac"]
        if seq in self.wanted:
            self.seen[seq] = entry["mac"]
        self.checked += 1

    def _check_mac(self, seq: int, entry: Mapping[str, Any]) -> None:
        assert self.key is not None
        if set(entry) != FIELDS:
            raise _Problem("audit.entry_altered", f"entry {seq}: a field was added or removed",
                           seq)
        try:
            mac = entry_mac(self.key, self.prev_mac, entry)
        except (TypeError, ValueError):
            raise _Problem("audit.entry_altered", f"entry {seq}: malformed", seq) from None
        stored = entry.get("mac")
        if not isinstance(stored, str) or not hmac.compare_digest(
                mac.encode(), stored.encode("utf-8", "replace")):
            raise _Problem("audit.entry_altered", f"entry {seq}: altered (MAC mismatch)", seq)

    def check_head(self, head: Mapping[str, Any] | None, progressed: bool) -> bool:
        """Compare the head with the last checked entry: whether the walk is done."""
        if head is None:
            if self.checked == 0:
                return True
            raise _Problem("audit.head_missing", "the head is missing", self.last_seq)
        seq = head.get("seq")
        if type(seq) is not int:
            raise _Problem("audit.head_mismatch", "the head is malformed", None)
        if seq > self.last_seq and progressed:
            return False  # appended while walking: walk on
        if seq > self.last_seq:
            raise _Problem("audit.entry_missing", f"entries {self.last_seq + 1}-{seq} are missing",
                           self.last_seq + 1)
        if seq < self.last_seq:
            raise _Problem("audit.head_mismatch", "the head is behind the entries", seq)
        if head.get("mac") != self.prev_mac:
            raise _Problem("audit.head_mismatch", "the head does not match the last entry", seq)
        return True

    def check_anchors(self, anchors: list[checkpoint.Checkpoint]) -> None:
        """Every checkpoint must name an entry the chain still has, with the same MAC."""
        for anchor in sorted(anchors, key=lambda a: a.seq, reverse=True):
            where = f"a checkpoint ({anchor.source}) at seq {anchor.seq}"
            if anchor.seq > 0 and self.checked == 0:
                raise _Problem("audit.chain_deleted",
                               f"the chain has no entries and no head but {where}", anchor.seq)
            if anchor.seq > self.last_seq:
                raise _Problem("audit.head_rolled_back",
                               f"the chain ends at seq {self.last_seq} but {where}: entries "
                               f"{self.last_seq + 1}-{anchor.seq} were dropped", anchor.seq)
            if anchor.seq > 0 and not hmac.compare_digest(
                    self.seen.get(anchor.seq, "").encode(), anchor.head.encode()):
                raise _Problem("audit.checkpoint_mismatch",
                               f"entry {anchor.seq} is not the entry {where} names", anchor.seq)


def _walk_entries(store: DocumentStore, walk: _Walk, page_size: int) -> None:
    """Check every entry after ``walk.last_seq``, one page at a time.

    Each page starts at the last checked seq (inclusive) so a second document claiming that
    seq cannot hide on a page boundary; the entry already checked is skipped by its id.
    """
    if page_size < 2:
        raise InvalidInput("page_size must be at least 2")
    while True:
        page = store.query(
            ENTRIES,
            [Filter("chain", "==", walk.chain), Filter("seq", ">=", walk.last_seq)],
            [Order("seq")],
            limit=page_size,
        )
        before = walk.checked
        for snapshot in page:
            walk.step(snapshot)
        if len(page) < page_size or walk.checked == before:
            return
