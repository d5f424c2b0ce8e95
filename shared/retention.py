"""Documents that expire on their own.

A Firestore TTL policy deletes a document once a field it names holds a past *timestamp*; it
ignores strings. Each expiring document therefore carries :data:`TTL_FIELD`, a native
timestamp written with :func:`purge_at`, beside whatever ISO-string field its own code reads
and queries (``expires_at``). Firestore deletes expired documents within about a day after
that moment, never before, so :data:`TTL_FIELD` is set no earlier than the moment the
document stops mattering. The embedded store keeps the field but deletes nothing by it (the
replay guard purges its own collection).

The collections (``TTL_COLLECTIONS``, gathered in :mod:`keyway.infra_export`) become
``google_firestore_field`` TTL policies in ``infra/firestore.tf``.
"""

from __future__ import annotations

from datetime import UTC, datetime

TTL_FIELD = "purge_at"


def purge_at(moment: datetime) -> dict[str, datetime]:
    """The field to merge into a document that may be deleted from ``moment`` on."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return {TTL_FIELD: moment.astimezone(UTC)}
