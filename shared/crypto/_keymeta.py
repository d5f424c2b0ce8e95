"""Private: the data-key metadata document ``data_keys/<component>`` and the store
transactions that change it (layout in :mod:`shared.crypto.datakeys`). Each function runs
inside ``ports.vault.transaction`` and may run more than once, so it only reads and writes
through ``tx``."""

from __future__ import annotations

import copy
from typing import Any

from shared.errors import Conflict, NotFound
from shared.ports import Document, Transaction

COLLECTION = "data_keys"
ACTIVE, RETIRED = "active", "retired"


def version_entry(meta: Document | None, version: int) -> dict[str, Any] | None:
    """The metadata of ``version``, or ``None``."""
    return None if meta is None else meta["versions"].get(str(version))


def next_version(meta: Document | None) -> int:
    return 1 if meta is None else max(int(v) for v in meta["versions"]) + 1


def append_in(tx: Transaction, component: str, version: int, new: dict[str, Any]
              ) -> tuple[bool, Document | None]:
    """Record ``version`` as the new primary unless another instance recorded it first."""
    current = tx.get(COLLECTION, component)
    if next_version(current) != version:
        return False, current
    updated = copy.deepcopy(current) if current is not None else {"versions": {}}
    updated["versions"][str(version)] = new
    updated["primary"] = version
    tx.put(COLLECTION, component, updated)
    return True, updated


def grant_in(tx: Transaction, component: str, block: int, rotate_after: int
             ) -> tuple[int, int, Document | None]:
    """Reserve up to ``block`` uses of the primary within ``rotate_after``:
    ``(version, granted, metadata)``; ``granted`` 0 means its budget is spent."""
    current = tx.get(COLLECTION, component)
    if current is None:
        return 0, 0, None
    version = int(current["primary"])
    used = int(current["versions"][str(version)]["encryptions_reserved"])
    granted = max(0, min(block, rotate_after - used))
    if not granted:
        return version, 0, current
    updated = copy.deepcopy(current)
    updated["versions"][str(version)]["encryptions_reserved"] = used + granted
    tx.put(COLLECTION, component, updated)
    return version, granted, updated


def retire_in(tx: Transaction, component: str, version: int, now: str) -> Document:
    """Mark ``version`` retired; the primary → ``Conflict``, unknown → ``NotFound``."""
    current = tx.get(COLLECTION, component)
    if current is None or version_entry(current, version) is None:
        raise NotFound(f"data keys of {component!r} have no version {version}")
    if int(current["primary"]) == version:
        raise Conflict(f"data key {version} of {component!r} is the primary; rotate "
                       "before retiring it")
    if current["versions"][str(version)]["state"] == RETIRED:
        return current
    updated = copy.deepcopy(current)
    updated["versions"][str(version)].update(state=RETIRED, retired_at=now)
    tx.put(COLLECTION, component, updated)
    return updated
