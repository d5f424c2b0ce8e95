"""What the provider table cannot say about receiving a provider's webhooks (see
:mod:`shared.webhooks.pipeline`): headers forwarded to ``ingest``, the Standard Webhooks format,
and the header scoping a delivery id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """What the provider table cannot say: headers worth forwarding to ``ingest`` (message
    field → header), whether the provider may sign in the Standard Webhooks format, and a
    header scoping the delivery id (Bitbucket's ``X-Request-UUID`` is deduped per hook,
    ``X-Hook-UUID``, so two hooks' deliveries of one event are never mistaken for a replay)."""

    forwarded: Mapping[str, str]
    standard_webhooks: bool = False
    delivery_scope: str | None = None


PROFILES: dict[str, Profile] = {
    "github": Profile({"hook_id": "X-GitHub-Hook-ID",
                       "target_id": "X-GitHub-Hook-Installation-Target-ID",
                       "target_type": "X-GitHub-Hook-Installation-Target-Type",
                       "enterprise_host": "X-GitHub-Enterprise-Host"}),
    "gitlab": Profile({"instance": "X-Gitlab-Instance", "hook_uuid": "X-Gitlab-Webhook-UUID"},
                      standard_webhooks=True),
    "bitbucket": Profile({"hook_uuid": "X-Hook-UUID", "attempt": "X-Attempt-Number"},
                         delivery_scope="X-Hook-UUID"),
    "jira": Profile({"retry": "X-Atlassian-Webhook-Retry"}),
}
