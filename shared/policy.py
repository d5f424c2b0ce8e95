"""The component policy table: which component may publish to which topic, and who consumes it.

This is the single source of truth for least privilege between components (DESIGN.md promise
7). The runtime checks it on every message (:func:`check_publish`, :func:`check_delivery`) and
the Terraform IAM bindings in ``infra/`` are generated from :func:`iam_bindings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import PolicyViolation

PROVIDERS: tuple[str, ...] = ("github", "gitlab", "bitbucket", "jira")
CLOUD_SCHEDULER = "cloud-scheduler"


@dataclass(frozen=True)
class Route:
    topic: str
    publishers: frozenset[str]
    subscriber: str
    carries: str


def _provider_routes(p: str) -> list[Route]:
    return [
        Route(
            f"sync-requests-{p}",
            frozenset({"scheduler", "api", "ingest", f"fetch-{p}", f"oauth-{p}"}),
            f"vault-{p}",
            "tenant, connection, scope of the sync, resume point",
        ),
        Route(
            f"fetch-jobs-{p}",
            frozenset({f"vault-{p}"}),
            f"fetch-{p}",
            "sealed app-token envelope (purpose fetch), connection, what to fetch, cursor",
        ),
        Route(
            f"action-requests-{p}",
            frozenset({"api"}),
            f"vault-{p}",
            "tenant, requesting user, action id, action",
        ),
        Route(
            f"action-jobs-{p}",
            frozenset({f"vault-{p}"}),
            f"act-{p}",
            "sealed personal-token envelope (purpose action), action id, action",
        ),
        Route(
            f"events-{p}",
            frozenset({f"webhook-{p}"}),
            "ingest",
            "verified webhook event (headers that matter + body), delivery id",
        ),
    ]


ROUTES: dict[str, Route] = {
    r.topic: r
    for r in [
        *(route for p in PROVIDERS for route in _provider_routes(p)),
        Route("refresh-ticks", frozenset({CLOUD_SCHEDULER}), "scheduler", "tick time"),
    ]
}


def dead_letter_topic(topic: str) -> str:
    return f"{topic}-dead-letter"


def subscription_name(topic: str) -> str:
    return f"{topic}-to-{ROUTES[topic].subscriber}"


def topics_published_by(component: str) -> list[str]:
    return sorted(t for t, r in ROUTES.items() if component in r.publishers)


def topics_consumed_by(component: str) -> list[str]:
    return sorted(t for t, r in ROUTES.items() if r.subscriber == component)


def check_publish(sender: str, topic: str) -> Route:
    """Raise ``PolicyViolation`` unless ``sender`` may publish to ``topic``."""
    route = ROUTES.get(topic)
    if route is None or sender not in route.publishers:
        raise PolicyViolation(f"{sender} may not publish to {topic}", key="policy.publish_refused")
    return route


def check_delivery(receiver: str, topic: str, sender: str) -> Route:
    """Raise ``PolicyViolation`` unless ``receiver`` consumes ``topic`` and ``sender`` may send."""
    route = ROUTES.get(topic)
    if route is None or route.subscriber != receiver or sender not in route.publishers:
        raise PolicyViolation(
            f"{receiver} refuses a message on {topic} from {sender}", key="policy.delivery_refused"
        )
    return route


def iam_bindings() -> list[tuple[str, str, str]]:
    """(topic, component, role) triples the Terraform must grant — and nothing more."""
    rows: list[tuple[str, str, str]] = []
    for topic, route in sorted(ROUTES.items()):
        for publisher in sorted(route.publishers):
            rows.append((topic, publisher, "roles/pubsub.publisher"))
    return rows
