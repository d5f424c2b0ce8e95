"""Operator actions on a vault's data keys that must look at its records first.

Retiring a data-key version makes every ciphertext under it unreadable for good. So
:func:`retire` counts the records (per collection) that still hold a field under that version
and refuses with :class:`KeyInUse` while any does — run ``keyway keys reencrypt`` first. With
``force`` it retires anyway: those records then fail to decrypt, and their connections turn
``needs_reauth`` (reason ``vault.undecryptable``) at their next release. Either way the
retirement is appended to the vault's audit chain: event ``key_retire``, the operator as
requester, outcome ``retired`` or ``forced``, detail ``version=<v> records=<n>`` (never a
record's contents). Records are counted, then the version retired, not atomically: a record
written under the old version in between can only come from an instance that has not yet
re-read the key metadata after the rotation (at most ``datakeys.METADATA_TTL`` seconds).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from shared.errors import Conflict, CryptoError, NotFound

if TYPE_CHECKING:
    from shared.vault.service import VaultService


class KeyInUse(Conflict):
    key, title = "crypto.data_key_in_use", "Records still use this data-key version"


def records_using(vault: VaultService, version: int) -> dict[str, int]:
    """``{collection: how many records}`` with a field encrypted under ``version``."""
    counts: Counter[str] = Counter()
    for collection, snap in vault.encrypted_records():
        try:
            versions = vault.codec.key_versions(snap.data)
        except CryptoError:
            continue  # unreadable anyway: not a reason to keep a key
        if version in versions:
            counts[collection] += 1
    return dict(sorted(counts.items()))


def retire(vault: VaultService, version: int, operator: str, *,
           force: bool = False) -> dict[str, int]:
    """Retire ``version`` of the vault's data keys if no record uses it (or ``force``);
    return the counts of records that still used it."""
    known = vault.keyring.versions()
    if version not in known:
        raise NotFound(f"data keys of {vault.component} have no version {version}")
    if version == max(known):  # new versions always become the primary
        raise Conflict(f"data key {version} of {vault.component} is the primary; rotate "
                       "before retiring it")
    in_use = records_using(vault, version)
    total = sum(in_use.values())
    if total and not force:
        where = ", ".join(f"{count} in {collection}" for collection, count in in_use.items())
        raise KeyInUse(f"data key {version} of {vault.component} is still used by {total} "
                       f"record(s) ({where}); run `keyway keys reencrypt {vault.component}` "
                       "first, or retire with --force to make those tokens unreadable")
    vault.keyring.retire(version)
    vault.audit.append("key_retire", requester=operator, recipient=None, purpose=None,
                       connection=None, outcome="forced" if force else "retired",
                       detail=f"version={version} records={total}")
    return in_use
