"""Normalized provider records: one common model for GitHub and GitLab metadata.

* :mod:`shared.records.model` — kinds, :class:`~shared.records.model.Context`, record ids and
  the allowlisted field list of every kind.
* :mod:`shared.records.github` / :mod:`shared.records.gitlab` / :mod:`shared.records.jira`
  (with :mod:`shared.records.adf` for Jira's comment bodies) — the same functions
  (``repository``, ``pull_request``, ``issue``, ``comment``, ``review``, ``reviews``,
  ``label``, ``user``) turning one provider payload into one record.
* :mod:`shared.records.store` — ``upsert``, ``upsert_many``, ``mark_deleted``: idempotent,
  never older over newer, tombstones for deletions.

Fetchers and ``ingest`` both write through this package, so a webhook and a sync of the same
object land on the same record. ``docs/DATA_MODEL.md`` documents the model.
"""

from shared.records.model import KINDS, Context, record_id

__all__ = ["KINDS", "Context", "record_id"]
