"""webhook-P: verify, dedupe and publish provider webhooks; acknowledge fast.

Every request runs one fixed pipeline (:mod:`shared.webhooks.pipeline`)::

    size cap → raw body → signature → delivery dedupe → JSON parse → publish → 202

* :mod:`~shared.webhooks.body` reads at most ``max_body_bytes + 1`` bytes (the provider
  table's cap) and never the rest of an oversized body.
* :mod:`~shared.webhooks.secrets` finds the secrets that may sign a request — the current and
  the previous one during a rotation — and caches them briefly per instance.
* :mod:`~shared.webhooks.signatures` compares in constant time: GitHub's
  ``X-Hub-Signature-256``, Bitbucket's and Jira's ``X-Hub-Signature`` (``sha256=<hex>``),
  GitLab's ``X-Gitlab-Token`` and GitLab's signed (Standard Webhooks) format; and checks the
  HS256 JWT Jira's dynamic webhooks carry.
* :mod:`~shared.webhooks.deliveries` records each delivery id once in the business store.
* :mod:`~shared.webhooks.errors` holds the rejections, one stable log key each
  (``webhook.<provider>.<reason>``).

The function never calls a provider API: what the event means is ``ingest``'s job, behind the
``events-P`` topic.

keyway's own hooks at the provider (per connection, when the admin asked for them) are managed
elsewhere, by the components that hold the app token: :mod:`~shared.webhooks.register`
(``fetch-P``, during a sync; Jira's expiring dynamic webhooks in
:mod:`~shared.webhooks.dynamic`), :mod:`~shared.webhooks.unregister` (``vault-P``, on
disconnect), over :mod:`~shared.webhooks.hooks` (request bodies, the ``webhook_registrations``
records).

The package imports nothing itself: a component that only needs one module (vault-P's
``secrets`` and ``unregister``) does not load the pipeline and its web framework.
"""
