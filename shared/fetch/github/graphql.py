"""The GraphQL documents GitHub's fetcher may send, exactly as sent.

Each is listed in ``providers.json`` (``api.graphql.documents``) by name with the SHA-256 of
this text, its variables and every field it selects; :class:`shared.fetch.client.ProviderClient`
refuses to send a document whose text, variables or selections differ from that entry
(:mod:`shared.providers.graphql`). Changing a document here therefore means changing its table
entry too, where the schema refuses code fields (``object``, ``Blob``, ``text``, ``tree``…).

* ``pull_request_reviews``: the reviews of up to 100 pull requests by their REST ``node_id``,
  100 reviews each, in the order GitHub's REST endpoint lists them (chronological);
* ``pull_request_reviews_page``: the next 100 reviews of one pull request after a cursor;
* ``repository_totals``: how many issues (pull requests excluded), pull requests and labels
  each of up to 100 repositories holds, by their REST ``node_id``
  (:mod:`shared.fetch.reconcile_totals`). GitHub requires ``first`` on every connection;
  ``first: 1`` with only ``totalCount`` selected reads no item. Cost by GitHub's formula: three
  connections per repository, ``round(3 × repositories / 100)``, at least 1 point (1 point up
  to 49 repositories, 3 for 100).

Reviews select what :func:`shared.records.github.review` reads from the REST payload:
``fullDatabaseId`` (the REST ``id``; a BigInt sent as a string — review ids have outgrown the
32-bit ``databaseId``, which GitHub deprecated), ``state``, ``submittedAt``, ``url``
(``html_url``) and the author's ``login`` and ``databaseId`` (the REST ``user.id``).
``rateLimit.cost`` is the points the query spent.
"""

from __future__ import annotations

_REVIEWS = """
        nodes {
          fullDatabaseId
          state
          submittedAt
          url
          author {
            login
            ... on User { databaseId }
            ... on Bot { databaseId }
            ... on Mannequin { databaseId }
          }
        }
        pageInfo { hasNextPage endCursor }"""

PULL_REQUEST_REVIEWS = """query PullRequestReviews($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on PullRequest {
      id
      number
      reviews(first: 100) {""" + _REVIEWS + """
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""

PULL_REQUEST_REVIEWS_PAGE = """query PullRequestReviewsPage($id: ID!, $after: String!) {
  node(id: $id) {
    ... on PullRequest {
      id
      number
      reviews(first: 100, after: $after) {""" + _REVIEWS + """
      }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""

REPOSITORY_TOTALS = """query RepositoryTotals($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Repository {
      id
      issues(first: 1) { totalCount }
      pullRequests(first: 1) { totalCount }
      labels(first: 1) { totalCount }
    }
  }
  rateLimit { cost remaining resetAt }
}
"""

DOCUMENTS: dict[str, str] = {
    "pull_request_reviews": PULL_REQUEST_REVIEWS,
    "pull_request_reviews_page": PULL_REQUEST_REVIEWS_PAGE,
    "repository_totals": REPOSITORY_TOTALS,
}
