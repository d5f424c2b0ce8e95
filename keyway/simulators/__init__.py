"""Provider simulators: real loopback HTTP servers speaking GitHub's, GitLab's, Bitbucket
Cloud's and Jira Cloud's OAuth and REST formats, for tests, benchmarks and the local sandbox
(local-only tooling, never deployed).

Layout: :mod:`.server` (the :class:`Simulator` base: server, routing table, request log,
faults, latency), :mod:`.oauth` and :mod:`.oauth_model` (the shared authorization-code + PKCE
+ refresh machinery), :mod:`.ratelimit` (per-account budgets, 304s free), :mod:`.wire` (JSON,
ETags, credentials, route templates), :mod:`.activity` (time-ordered indexes of seeded
activity), :mod:`.seeding` (the seeding machinery every provider shares),
:mod:`.activity_store` (the activity store base: lock, ids, deletion record, the
``touch``/``delete`` knobs), :mod:`.activity_knobs` (GitHub's and GitLab's knob methods), and
per provider ``<provider>.py`` (the simulator), ``<provider>_oauth.py``, ``<provider>_api.py``
(user, repositories/projects), ``<provider>_seed.py`` and ``<provider>_data.py`` (seeded
pull/merge requests, issues, comments, reviews, labels and the hooks the knobs call),
``<provider>_render.py`` (the provider's JSON shapes),
``<provider>_metadata.py`` (the endpoints a fetcher syncs) and ``<provider>_forbidden.py``
(code endpoints keyway must never call, served so the request log can prove it).
"""

from keyway.simulators.bitbucket import BitbucketSimulator
from keyway.simulators.github import GitHubSimulator
from keyway.simulators.gitlab import GitLabSimulator
from keyway.simulators.jira import JiraSimulator
from keyway.simulators.oauth import s256
from keyway.simulators.oauth_model import Account, OAuthError
from keyway.simulators.server import LoggedRequest, Simulator

__all__ = ["Account", "BitbucketSimulator", "GitHubSimulator", "GitLabSimulator",
           "JiraSimulator", "LoggedRequest", "OAuthError", "Simulator", "s256"]
