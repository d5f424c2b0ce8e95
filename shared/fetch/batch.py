"""Children of many changed items per request, through one vetted GraphQL document
(:class:`shared.fetch.plan.BatchSpec`; GitHub's reviews).

For the changed items of one page, in chunks of ``batch_size``: one ``document`` query with
their node ids answers every item's first page of children (``nodes`` in the order of the ids;
``null`` for an item deleted since it was listed, which is skipped). An item whose children
have more pages is followed one ``page_document`` query per page, from the previous page's
``endCursor``. Every child is normalized and upserted (idempotent, never older over newer;
one conditional batch per page of children, :mod:`shared.fetch.write`);
:mod:`shared.fetch.walk` calls this before it writes the page's items, so a failure here
leaves them changed and the resumed walk fetches their children again.

A permanent refusal (:func:`shared.fetch.errors.unavailable_reason`: a 403/404 answer, a
GraphQL ``FORBIDDEN``/``NOT_FOUND`` for the whole query, a GraphQL endpoint that is off) does
not raise: the items it concerns — the whole chunk, the one item the answer says the token
may not read (``FORBIDDEN`` at its path), or the one item whose next page was refused — are
returned with the reason, for :mod:`shared.fetch.pending`, and the other chunks
are still read. Everything else (rate limits, 5xx, a malformed answer, a rejected token)
raises as before.
"""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentError
from shared.fetch import write as writes
from shared.fetch._graphql import GraphQLResponse
from shared.fetch.client import ProviderClient
from shared.fetch.errors import MalformedResponse, ProviderRefused, reason_or_raise
from shared.fetch.pending import Failed
from shared.fetch.plan import BatchSpec, Parent
from shared.fetch.walk import Stats
from shared.ports import DocumentStore
from shared.records.model import Context


class BatchFetcher:
    def __init__(self, store: DocumentStore, client: ProviderClient, stats: Stats) -> None:
        self._store, self._client, self.stats = store, client, stats

    def fetch(self, spec: BatchSpec, ctx: Context,
              parents: list[tuple[str, Parent]]) -> list[Failed]:
        """Fetch and write the children of ``parents`` (GraphQL node id, :class:`Parent`);
        the parents whose children the provider refused, with the reason."""
        failed: list[Failed] = []
        for start in range(0, len(parents), spec.batch_size):
            chunk = parents[start:start + spec.batch_size]
            ids = [node_id for node_id, _ in chunk]
            try:
                answer = self._query(spec.document, {"ids": ids})
            except PermanentError as e:
                failed += [(node_id, parent, reason_or_raise(e)) for node_id, parent in chunk]
                continue
            nodes = answer.data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(chunk):
                raise MalformedResponse(f"{spec.name}: expected one node per id")
            for index, ((node_id, parent), node) in enumerate(zip(chunk, nodes, strict=True)):
                if node is None and ("nodes", index) in answer.forbidden:
                    failed.append((node_id, parent, "permission"))  # this one only
                    continue
                if node is None:  # deleted since it was listed (NOT_FOUND)
                    continue
                try:
                    self._children(spec, ctx, parent, node_id, node)
                except PermanentError as e:
                    failed.append((node_id, parent, reason_or_raise(e)))
        return failed

    def _children(self, spec: BatchSpec, ctx: Context, parent: Parent, node_id: str,
                  node: Any) -> None:
        while True:
            connection = self._connection(spec, parent, node_id, node)
            produced = [spec.normalize(child, ctx, parent) for child in connection["nodes"]]
            for record in writes.upsert_page(self._store, produced):
                self.stats.wrote(record["kind"])
            info = connection.get("pageInfo") or {}
            cursor = info.get("endCursor")
            if info.get("hasNextPage") is not True:
                return
            if not isinstance(cursor, str) or not cursor:
                raise MalformedResponse(f"{spec.name}: a next page without a cursor")
            answer = self._query(spec.page_document, {"id": node_id, "after": cursor})
            node = answer.data.get("node")
            if node is None and answer.forbidden:
                raise ProviderRefused(f"{spec.name}: a next page refused",
                                      types=("FORBIDDEN",))
            if node is None:  # deleted between two pages
                return

    @staticmethod
    def _connection(spec: BatchSpec, parent: Parent, node_id: str, node: Any) -> dict:
        """The node's children connection, once the node is the parent it was asked for."""
        if (not isinstance(node, dict) or node.get("id") != node_id
                or node.get("number") != parent.number):
            raise MalformedResponse(f"{spec.name}: a node that is not the one asked for")
        connection = node.get(spec.connection)
        if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
            raise MalformedResponse(f"{spec.name}: expected a {spec.connection} connection")
        if not all(isinstance(child, dict) for child in connection["nodes"]):
            raise MalformedResponse(f"{spec.name}: expected objects in the connection")
        return connection

    def _query(self, document: str, variables: dict[str, Any]) -> GraphQLResponse:
        answer = self._client.graphql(document, variables)
        self.stats.requests += 1
        self.stats.graphql += 1
        self.stats.graphql_points += answer.cost if answer.cost is not None else 1
        return answer
