"""Topics and subscriptions derived from the policy table (used by the runner and infra).

Every topic has exactly one subscription (to its subscriber component) and a dead-letter
topic; :class:`shared.ports.SubscriptionSpec` carries the retry policy.
"""

from __future__ import annotations

from collections.abc import Callable

from shared import policy
from shared.ports import SubscriptionSpec

MAX_ATTEMPTS = 5
MIN_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 600.0
ACK_DEADLINE_SECONDS = 60


def subscription_specs(
    push_endpoint: Callable[[str, str], str] | None = None,
    *, min_backoff: float = MIN_BACKOFF_SECONDS, max_backoff: float = MAX_BACKOFF_SECONDS,
) -> list[SubscriptionSpec]:
    """One spec per topic; ``push_endpoint(component, topic)`` gives a push URL if any."""
    specs = []
    for topic, route in sorted(policy.ROUTES.items()):
        specs.append(SubscriptionSpec(
            name=policy.subscription_name(topic),
            topic=topic,
            dead_letter_topic=policy.dead_letter_topic(topic),
            max_attempts=MAX_ATTEMPTS,
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            ack_deadline=ACK_DEADLINE_SECONDS,
            push_endpoint=push_endpoint(route.subscriber, topic) if push_endpoint else None,
        ))
    return specs


def outlet_topics() -> list[str]:
    """Topics keyway publishes to for consumers outside keyway (no subscription of its own);
    the local stack creates them, Terraform declares them."""
    return sorted(policy.OUTLETS)
