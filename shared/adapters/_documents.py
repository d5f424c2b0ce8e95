"""The document rules every :class:`~shared.ports.DocumentStore` adapter enforces.

The port's value rules (timestamps must be timezone-aware) plus Firestore's limits (64-bit
ints, finite floats, valid UTF-8, no list directly in a list, no ``__x__`` keys or ids, names
of at most 1500 bytes) and Firestore's query rules (dotted-identifier fields, same-typed scalar
filter values, ``None`` only with ``==`` and ``!=``, ``in`` with 1 to 30 values, at most one
``!=``). Each adapter checks them before its backend sees anything, so code that works on the
embedded store works on Firestore.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidInput
from shared.ports import MAX_BATCH_WRITES, ConditionalWrite, Document, Filter, Order

INEQUALITIES = frozenset({"!=", "<", "<=", ">", ">="})
MAX_IN = 30
_RESERVED = re.compile(r"^__.*__$", re.DOTALL)
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT64 = (-(2**63), 2**63 - 1)
_SCALARS = (bool, int, float, str, bytes)


def _same(raw: Any) -> Any:
    return raw


# ---- names and values -----------------------------------------------------------------------
def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid collection name or document id (``what`` says which)."""
    if (not isinstance(name, str) or not name or "/" in name or name in (".", "..")
            or _RESERVED.match(name) or len(utf8(name)) > 1500):
        raise InvalidInput(f"invalid {what}")
    return name


def utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidInput("strings must be valid UTF-8") from e


def check_key(key: object) -> str:
    if type(key) is str and key and (key.isascii() or utf8(key)) and not (
            len(key) >= 4 and key[:2] == "__" and key[-2:] == "__"):  # _RESERVED, fast
        return key
    if not isinstance(key, str) or not key or _RESERVED.match(key) or not utf8(key):
        raise InvalidInput("document keys must be non-empty strings not of the form __x__")
    return key


def check_value(
    value: Any, *, bytes_as: Callable[[bytes], Any] = _same,
    datetime_as: Callable[[datetime], Any] = _same, in_list: bool = False
) -> Any:
    """Raise ``InvalidInput`` unless ``value`` follows the value rules; return a copy of it with
    every ``bytes`` value replaced by ``bytes_as(value)`` and every timestamp (aware
    ``datetime``, converted to UTC) by ``datetime_as(value)`` (left as is by default)."""
    kind = type(value)  # the common exact types first (a page of records is ~25k values)
    if kind is str and value.isascii() or value is None or kind is bool:
        return value
    if kind is dict:  # a record: its plain keys and scalar values checked inline
        out = {}
        for key, item in value.items():
            if not (type(key) is str and key and key.isascii() and not (
                    len(key) >= 4 and key[:2] == "__" and key[-2:] == "__")):
                key = check_key(key)
            of = type(item)
            if of is str and item.isascii() or item is None or of is bool or (
                    of is int and _INT64[0] <= item <= _INT64[1]):
                out[key] = item
            else:
                out[key] = check_value(item, bytes_as=bytes_as, datetime_as=datetime_as)
        return out
    if kind is int and _INT64[0] <= value <= _INT64[1]:
        return value
    if isinstance(value, str):
        utf8(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise InvalidInput("integers must fit in 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput("floats must be finite")
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes):
        return bytes_as(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput("timestamps must be timezone-aware")
        return datetime_as(value.astimezone(UTC))
    if isinstance(value, list):
        if in_list:
            raise InvalidInput("a list cannot directly contain a list")
        return [check_value(item, bytes_as=bytes_as, datetime_as=datetime_as, in_list=True)
                for item in value]
    if isinstance(value, dict):
        return {check_key(key): check_value(item, bytes_as=bytes_as, datetime_as=datetime_as)
                for key, item in value.items()}
    raise InvalidInput(f"unsupported value type: {type(value).__name__}")


def check_document(data: Document, *, bytes_as: Callable[[bytes], Any] = _same,
                   datetime_as: Callable[[datetime], Any] = _same) -> Document:
    """:func:`check_value` for a whole document, which must be a dict."""
    if not isinstance(data, dict):
        raise InvalidInput("a document must be a dict")
    return check_value(data, bytes_as=bytes_as, datetime_as=datetime_as)


# ---- queries --------------------------------------------------------------------------------
def check_field(field: object) -> str:
    """Return ``field`` if it is a dotted path of identifiers (none of the form ``__x__``)."""
    parts = field.split(".") if isinstance(field, str) else [""]
    if not all(_SEGMENT.match(part) and not _RESERVED.match(part) for part in parts):
        raise InvalidInput("query fields must be dotted identifiers")
    return str(field)


def check_filter(where: Filter) -> Filter:
    """Return ``where`` if both stores run it the same way: same-typed scalars only."""
    check_field(where.field)
    value, op = where.value, where.op
    if op == "in":
        if (not isinstance(value, list) or not 0 < len(value) <= MAX_IN
                or not all(isinstance(item, _SCALARS) for item in value)):
            raise InvalidInput(f"'in' takes a list of 1 to {MAX_IN} non-null values")
    elif op not in INEQUALITIES and op != "==":
        raise InvalidInput("unsupported filter operator")
    elif not isinstance(value, _SCALARS) and not (value is None and op in ("==", "!=")):
        raise InvalidInput("filter values must be None (== and != only), bool, number, str, bytes")
    check_value(value)
    return where


def check_query(
    collection: str, where: Sequence[Filter], order_by: Sequence[Order], limit: int | None
) -> str:
    """Check a whole query (name, limit, filters, order fields); return the collection name."""
    check_name(collection, "collection name")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise InvalidInput("limit must be a non-negative integer")
    if sum(clause.op == "!=" for clause in where) > 1:
        raise InvalidInput("at most one != filter per query (Firestore's rule)")
    for clause in where:
        check_filter(clause)
    for order in order_by:
        check_field(order.field)
    return collection


def check_attempts(max_attempts: int) -> None:
    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1")


def check_batch(writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
    """A batch of conditional writes: at most :data:`~shared.ports.MAX_BATCH_WRITES`, one
    write per document, valid names and ``expect`` values (documents are checked by the
    adapter, with its own encodings)."""
    batch = list(writes)
    if len(batch) > MAX_BATCH_WRITES:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH_WRITES} writes, not {len(batch)}")
    seen: set[tuple[str, str]] = set()
    for write in batch:
        if not isinstance(write, ConditionalWrite):
            raise InvalidInput("a batch holds ConditionalWrite items")
        key = (check_name(write.collection, "collection name"),
               check_name(write.doc_id, "document id"))
        if key in seen:
            raise InvalidInput("a batch holds at most one write per document")
        seen.add(key)
        if write.expect is not None and (not isinstance(write.expect, str) or not write.expect):
            raise InvalidInput("expect is a version read by get_many, or None (absent)")
        if not isinstance(write.data, dict):
            raise InvalidInput("a conditional write's data is a document (dict)")
    return batch


def check_ids(doc_ids: Sequence[str]) -> list[str]:
    """The ids of a :meth:`~shared.ports.DocumentStore.get_many`, checked, duplicates once."""
    if isinstance(doc_ids, str):
        raise InvalidInput("get_many takes a sequence of ids, not one string")
    return list(dict.fromkeys(check_name(doc_id, "document id") for doc_id in doc_ids))
