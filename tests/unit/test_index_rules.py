"""Firestore's index rules (shared.index_rules) on the examples of its documentation: which
queries built-in indexes serve, which composite index the others need, and when a declared
index is that index."""

from __future__ import annotations

import pytest

from shared.index_rules import ASC, DESC, Index, index, required, serves, unserved
from shared.ports import Filter, Order


def need(*fields: tuple[str, str], equalities: int = 0, collection: str = "cities",
         database: str = "(default)") -> Index:
    return Index(collection, tuple(fields), database, equalities)


@pytest.mark.parametrize(("where", "order_by"), [
    ((), ()),                                                        # every document, by id
    ((Filter("state", "==", "CA"),), ()),                            # one equality
    ((Filter("state", "==", "CA"), Filter("capital", "==", True)), ()),  # merged equalities
    ((Filter("state", "in", ["CA", "WA"]), Filter("capital", "==", True)), ()),
    ((Filter("population", ">", 100000),), ()),                      # one range
    ((Filter("population", ">", 100000),), (Order("population"),)),  # range, ordered alike
    ((), (Order("name", descending=True),)),                         # one order, either way
    ((Filter("country", "!=", "USA"),), ()),                         # != is a range on one field
])
def test_built_in_indexes_serve_equalities_and_one_field_ranges(where, order_by):
    assert required("cities", where, order_by) is None


def test_an_equality_with_an_order_on_another_field_needs_an_index():
    assert required("cities", [Filter("state", "==", "CA")], [Order("population")]) == need(
        ("state", ASC), ("population", ASC), equalities=1)


def test_an_equality_with_a_range_on_another_field_needs_an_index_ordered_by_the_range():
    assert required("cities", [Filter("state", "==", "CA"), Filter("population", "<", 1000)]) \
        == need(("state", ASC), ("population", ASC), equalities=1)


def test_a_descending_order_is_part_of_the_index():
    assert required("cities", [Filter("state", "==", "CA")],
                    [Order("population", descending=True)]) == need(
        ("state", ASC), ("population", DESC), equalities=1)


def test_orders_on_several_fields_need_an_index():
    assert required("cities", (), [Order("state"), Order("population", descending=True)]) \
        == need(("state", ASC), ("population", DESC))


def test_ranges_on_several_fields_order_them_by_field_name():
    # the documentation's tasks example: priority > 4 and days < 3
    assert required("tasks", [Filter("priority", ">", 4), Filter("days", "<", 3)]) == need(
        ("days", ASC), ("priority", ASC), collection="tasks")


def test_a_range_on_a_field_not_ordered_by_follows_the_orders_in_the_last_direction():
    assert required("cities", [Filter("population", ">", 1)], [Order("name", True)]) == need(
        ("name", DESC), ("population", DESC))


def test_an_order_on_a_field_an_equality_pins_is_dropped():
    assert required("cities", [Filter("state", "==", "CA")], [Order("state")]) is None


def test_an_unknown_operator_has_no_rule():
    with pytest.raises(ValueError, match="array-contains"):
        required("cities", [Filter("tags", "array-contains", "x")])  # type: ignore[arg-type]


def test_equality_fields_match_in_any_order_and_direction():
    wanted = required("cities", [Filter("state", "==", "CA"), Filter("capital", "==", True)],
                      [Order("population")])
    assert wanted is not None
    assert serves(index("cities", "state", "capital", "population"), wanted)
    assert serves(index("cities", "-capital", "state", "population"), wanted)


@pytest.mark.parametrize("declared", [
    index("cities", "state", "-population"),                    # wrong direction
    index("cities", "population", "state"),                     # order field first
    index("cities", "state"),                                    # too short
    index("cities", "state", "population", "name"),             # longer: a different index
    index("towns", "state", "population"),                      # another collection
    index("cities", "state", "population", database="vault"),   # another database
])
def test_an_index_that_differs_in_anything_but_equality_order_does_not_serve(declared):
    wanted = required("cities", [Filter("state", "==", "CA")], [Order("population")])
    assert wanted is not None and not serves(declared, wanted)


def test_unserved_lists_each_missing_index_once():
    served = need(("state", ASC), ("population", ASC), equalities=1)
    other = need(("name", ASC), ("population", DESC))
    assert unserved([served, other, other], [index("cities", "state", "population")]) == [other]
