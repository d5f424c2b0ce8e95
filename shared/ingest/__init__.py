"""ingest: turns verified webhook events into the same normalized records the fetchers write.

* :mod:`~shared.ingest.handler` — the ``webhook.event`` handler (routing, targets,
  idempotency);
* :mod:`~shared.ingest.github` / :mod:`~shared.ingest.gitlab` / :mod:`~shared.ingest.bitbucket` /
  :mod:`~shared.ingest.jira` — routing tables of event name → normalizer, over
  :mod:`shared.records`' provider functions (Jira finds its targets by site and project itself);
* :mod:`~shared.ingest.installations` — GitHub App installation events;
* :mod:`~shared.ingest.targets` — which connections an event belongs to;
* :mod:`~shared.ingest.event` — the event, its targets and the changes normalizers return.
"""
