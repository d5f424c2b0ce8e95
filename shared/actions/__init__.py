"""User-attributed actions (DESIGN.md ``act-P``, promises 3 and 4): a comment on a pull/merge
request or an issue, posted with the requesting user's own personal token.

Flow: ``api`` (:mod:`shared.actions.request`) records ``actions/<action_id>`` and publishes
``action.requested`` → ``vault-P`` seals that user's personal token for ``act-P`` →
``act-P`` (:mod:`shared.actions.handler`) posts through the metadata-only provider client and
records the outcome on the same document, which the API reads back.

* :mod:`shared.actions.model` — the document, the request's validation, the invisible marker.
* :mod:`shared.actions.targets` — per provider and parent kind: endpoint templates, path
  parameters, the comment normalizer.
* :mod:`shared.actions.ledger` — every write to ``actions/<id>``, each one transaction.
* :mod:`shared.actions.provider` — post a comment, or find one posted earlier by its marker.
* :mod:`shared.actions.pacing` — write slots per linked identity under the provider's
  documented write limits; a queued action is asked for again by the scheduler
  (:mod:`shared.scheduler.queued`).
* :mod:`shared.actions.outcome` — record a posted comment and mark the action done.
"""
