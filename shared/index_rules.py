"""Which composite index a Cloud Firestore query needs: Firestore's rules as one pure function.

Firestore answers every query from an index. It keeps a single-field index (ascending and
descending) on every field by itself, and it merges single-field indexes for a query whose filters
are all equalities (``==``, and ``in``, which runs as one equality per value). Any other shape
needs a composite index declared ahead of time, or Cloud Firestore refuses the query with
FAILED_PRECONDITION "The query requires an index"; the emulator never asks for one.

The *effective order* of a query (``StructuredQuery.order_by``): its explicit orders, then every
field with an inequality filter (``!=``, ``<``, ``<=``, ``>``, ``>=``) it does not order by, in
lexicographic order of the field name and in the direction of the last explicit order (ascending
without one), then the document name. An order on a field that an equality filter pins is a no-op
and is dropped.

:func:`required` answers ``None`` (no composite index needed) when

* the effective order is empty: equality filters only, or no filter (index merging), or
* the query has no equality filter and its effective order is one field (that field's
  single-field index, which exists in both directions);

otherwise the composite index: the equality fields (ascending; an equality field's direction does
not matter), then the effective order, field by field with its direction. The document name comes
last in every index, in the direction of the field before it. :func:`serves` says whether a
declared index is that index: same database and collection, leading fields exactly the equality
fields (any order, any direction), remaining fields exactly the effective order. keyway declares
the exact index of each shape (:mod:`shared.indexes`) rather than count on Firestore merging
composite indexes, so each declared index is one query's, checkable without guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.ports import Filter, Order

ASC, DESC = "ASCENDING", "DESCENDING"
BUSINESS, VAULT = "(default)", "vault"
EQUALITIES = frozenset({"==", "in"})
INEQUALITIES = frozenset({"!=", "<", "<=", ">", ">="})


@dataclass(frozen=True)
class Index:
    """A composite index: ``fields`` are (field path, ASCENDING | DESCENDING), in index order;
    query scope COLLECTION. ``equalities`` leading fields are the ones only equality filters use
    (0 for a declared index: every field is compared as written)."""

    collection: str
    fields: tuple[tuple[str, str], ...]
    database: str = BUSINESS
    equalities: int = 0

    def describe(self) -> str:
        shown = ", ".join(f"{name} {way.lower()}" for name, way in self.fields)
        return f"{self.database}/{self.collection} ({shown})"


def index(collection: str, *fields: str, database: str = BUSINESS) -> Index:
    """Declare an index: ``"field"`` is ascending, ``"-field"`` descending."""
    return Index(collection, tuple((f[1:], DESC) if f.startswith("-") else (f, ASC)
                                   for f in fields), database)


def effective_order(where: Sequence[Filter], order_by: Sequence[Order]) -> list[tuple[str, str]]:
    """The order Firestore gives the query, without the document name (see the module doc)."""
    pinned = {f.field for f in where if f.op in EQUALITIES}
    orders = [(o.field, DESC if o.descending else ASC) for o in order_by if o.field not in pinned]
    way = DESC if order_by and order_by[-1].descending else ASC
    named = {o.field for o in order_by}
    implicit = sorted({f.field for f in where if f.op in INEQUALITIES} - named - pinned)
    return orders + [(name, way) for name in implicit]


def required(collection: str, where: Sequence[Filter] = (), order_by: Sequence[Order] = (),
             database: str = BUSINESS) -> Index | None:
    """The composite index a query needs, or ``None`` when built-in indexes serve it."""
    for clause in where:
        if clause.op not in EQUALITIES | INEQUALITIES:
            raise ValueError(f"no index rule for operator {clause.op!r}")
    equal = sorted({f.field for f in where if f.op in EQUALITIES})
    order = effective_order(where, order_by)
    if not order or (not equal and len(order) == 1):
        return None
    return Index(collection, tuple((name, ASC) for name in equal) + tuple(order), database,
                 equalities=len(equal))


def serves(declared: Index, need: Index) -> bool:
    """Whether ``declared`` is the index ``need`` asks for (see the module docstring)."""
    if (declared.database, declared.collection) != (need.database, need.collection):
        return False
    if len(declared.fields) != len(need.fields):
        return False
    cut = need.equalities
    return ({name for name, _ in declared.fields[:cut]} == {name for name, _ in need.fields[:cut]}
            and declared.fields[cut:] == need.fields[cut:])


def unserved(needs: Iterable[Index], declared: Iterable[Index]) -> list[Index]:
    """The needed indexes no declared index serves, each once, in a stable order."""
    have = list(declared)
    missing = {need for need in needs if not any(serves(d, need) for d in have)}
    return sorted(missing, key=Index.describe)
