"""Does a GraphQL answer fit the query that asked for it? Every selected field is present with
the JSON type its schema type maps to, ``null`` only where the type is nullable.

Inline fragments (``... on User { databaseId }``) apply to an object of that type; without
``__typename`` in the answer, an object is taken to be of a fragment's type when it carries
any field only that fragment selects, and then it must carry all of them.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)

_SCALARS: dict[str, tuple[type, ...]] = {
    "Int": (int,), "Float": (int, float), "Boolean": (bool,), "String": (str,), "ID": (str,),
    # GitHub's custom scalars, as its schema describes them: all travel as strings
    "DateTime": (str,), "URI": (str,), "BigInt": (str,), "HTML": (str,), "GitObjectID": (str,),
    "Date": (str,), "GitTimestamp": (str,), "X509Certificate": (str,),
}


def mismatches(schema: GraphQLSchema, document: str, data: Any) -> list[str]:
    """Where ``data`` (an answer's ``data``) does not fit ``document``'s selection."""
    operation = next(d for d in parse(document).definitions
                     if isinstance(d, OperationDefinitionNode))
    assert schema.query_type is not None
    problems: list[str] = []
    _object(schema, schema.query_type, operation.selection_set, data, "data", problems)
    return problems


def _fields(selection: SelectionSetNode) -> list[FieldNode]:
    return [s for s in selection.selections if isinstance(s, FieldNode)]


def _object(schema: GraphQLSchema, parent: Any, selection: SelectionSetNode, value: Any,
            path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object, got {type(value).__name__}")
        return
    for field in _fields(selection):
        _field(schema, parent, field, value, path, problems)
    for fragment in selection.selections:
        if not isinstance(fragment, InlineFragmentNode):
            continue
        kind = (schema.get_type(fragment.type_condition.name.value)
                if fragment.type_condition else parent)
        own = {f.alias.value if f.alias else f.name.value
               for f in _fields(fragment.selection_set)}
        if own & set(value):  # the object is of this fragment's type
            _object(schema, kind, fragment.selection_set, value, f"{path}(on {kind})",
                    problems)


def _field(schema: GraphQLSchema, parent: Any, field: FieldNode, value: dict[str, Any],
           path: str, problems: list[str]) -> None:
    key = field.alias.value if field.alias else field.name.value
    here = f"{path}/{key}"
    if key not in value:
        problems.append(f"{here}: selected but absent")
        return
    definition = parent.fields.get(field.name.value)
    if definition is None:
        problems.append(f"{here}: {parent} has no field {field.name.value}")
        return
    _typed(schema, definition.type, field, value[key], here, problems)


def _typed(schema: GraphQLSchema, kind: Any, field: FieldNode, value: Any, path: str,
           problems: list[str]) -> None:
    if isinstance(kind, GraphQLNonNull):
        if value is None:
            problems.append(f"{path}: null where the schema says {kind}")
            return
        kind = kind.of_type
    if value is None:
        return
    if isinstance(kind, GraphQLList):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list ({kind})")
            return
        for i, item in enumerate(value):
            _typed(schema, kind.of_type, field, item, f"{path}/{i}", problems)
    elif isinstance(kind, GraphQLEnumType):
        if value not in kind.values:
            problems.append(f"{path}: {value!r} is not a value of {kind}")
    elif isinstance(kind, GraphQLScalarType):
        wanted = _SCALARS.get(kind.name, (str,))
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            problems.append(f"{path}: {value!r} is not a {kind.name}")
    elif field.selection_set is not None:  # an object or an interface
        _object(schema, kind, field.selection_set, value, path, problems)
