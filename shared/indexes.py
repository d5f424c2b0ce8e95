"""The composite Firestore indexes keyway's queries need: one declarative list, :data:`INDEXES`.

Cloud Firestore refuses a query that needs a composite index nobody declared
(:mod:`shared.index_rules` says which shapes do). ``python -m keyway.infra_export`` writes this
list into ``infra/indexes.auto.tfvars.json`` and ``infra/firestore.tf`` creates one
``google_firestore_index`` per entry. The test session records every query the code runs against
the business and vault stores and fails when one needs an index missing here
(``tests/indexguard.py``); ``tests/unit/test_indexes.py`` runs each query below and checks the
list both ways (every shape served, every index used).

To add a query that filters on one field and ranges or orders on another: add its index here
(``"-field"`` is descending), run the query in ``tests/unit/test_indexes.py`` too and regenerate
the Terraform input. Firestore allows 200 composite indexes per database.

Queries served by built-in indexes (equality filters only; one field ranged and/or ordered with
no other filter) need no entry: ``replay.purge_expired`` (``expires_at``), the scheduler's
``_recover`` (``recover_at``), the listing of connections, identities, repositories, pending
children, hooks, vault records and audit heads/checkpoints.
"""

from __future__ import annotations

from itertools import combinations

from shared.actions.model import COLLECTION as ACTIONS
from shared.api.data import RECORD_FILTERS, RESOURCES
from shared.api.reads import ACTION_FILTERS
from shared.audit.chain import ENTRIES as AUDIT_ENTRIES
from shared.index_rules import Index, index


def filter_sets(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every combination of optional filters a listing may be given, none to all, in order."""
    return [c for size in range(len(names) + 1) for c in combinations(names, size)]


#: One index per query shape, grouped by the code that runs it.
INDEXES: tuple[Index, ...] = (
    # shared/scheduler/tick.py run: status == active, next_sync_at <= now, order next_sync_at.
    index("connections", "status", "next_sync_at"),
    # shared/scheduler/purge.py sweep: status == disconnected, purge_at <= now.
    index("connections", "status", "purge_at"),
    # shared/scheduler/abandoned.py sweep: status == pending, created_at <= deadline.
    index(ACTIONS, "status", "created_at"),
    # shared/scheduler/queued.py sweep: status == pending, queued_until <= now, order queued_until.
    index(ACTIONS, "status", "queued_until"),
    # shared/audit/verify.py: chain == c, seq >= last, order seq.
    index(AUDIT_ENTRIES, "chain", "seq"),
    # shared/api/reads.py list_actions: tenant == t [and each given filter ==],
    # [created_at <= cursor], order created_at descending.
    *(index(ACTIONS, "tenant", *given, "-created_at") for given in filter_sets(ACTION_FILTERS)),
    # shared/api/data.py list_records, per kind: tenant == t, deleted == false [and each given
    # filter ==], [id > cursor], order id [, updated_at >= since: ranged after id].
    *(index(kind, "tenant", "deleted", *given, "id", *since)
      for kind in sorted(RESOURCES.values()) for given in filter_sets(RECORD_FILTERS)
      for since in ((), ("updated_at",))),
)
