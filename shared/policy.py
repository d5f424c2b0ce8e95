"""The component policy table: which component may send which message to whom.

This is the single source of truth for least privilege between components (DESIGN.md promise
7). Each topic has one subscriber and, per message type, the set of components allowed to
publish it. The runtime checks it on every message (:func:`check_publish` before publishing,
:func:`check_delivery` before any handler runs) and the Terraform IAM bindings in ``infra/``
are generated from :func:`iam_bindings`.

Sender authenticity: the ``sender`` attribute of a message is what its publisher says it is,
and IAM grants publishing per topic, not per message type. So every message type on a topic
must be allowed to every publisher of that topic (:class:`Route` refuses anything else): a
type reserved to fewer components gets a topic of its own, whose IAM publishers are exactly
those components. ``connection.disconnect`` (``api`` only) travels on
``connection-control-P``, not beside ``sync.requested`` on ``sync-requests-P``, so a
component that may ask for a sync cannot forge a disconnect by claiming to be ``api``.

Webhook gap recovery (:mod:`shared.webhooks.recovery`): ``scheduler`` asks ``vault-P`` on
``delivery-recovery-P`` (a topic of its own: only the scheduler asks) to read the provider's
delivery log with the token the vault holds, and ``vault-P`` publishes each missed delivery's
payload as a ``webhook.event`` on ``events-P``, beside ``webhook-P``.

Notifications (:mod:`shared.notify`): the components that record an event worth telling the
product (a health change, a sync's end, an action's outcome, an identity needing
reauthorization) publish ``notification.event`` on ``notifications``, and ``scheduler`` sweeps
the outbox for events whose first publish failed; ``notify`` delivers them. ``notify`` alone
publishes each event once more on the outlet topic ``keyway-events``
(:data:`OUTLETS`), which no keyway component consumes: it is for internal consumers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import PolicyViolation

PROVIDERS: tuple[str, ...] = ("github", "gitlab", "bitbucket", "jira")
CLOUD_SCHEDULER = "cloud-scheduler"


@dataclass(frozen=True)
class Route:
    topic: str
    subscriber: str
    types: Mapping[str, frozenset[str]]  # message type → components allowed to publish it
    carries: str

    def __post_init__(self) -> None:
        sets = set(self.types.values())
        if not self.types or len(sets) != 1:
            raise ValueError(f"{self.topic}: every message type on a topic must be allowed to "
                             "every publisher of the topic (IAM cannot tell them apart)")

    @property
    def publishers(self) -> frozenset[str]:
        return frozenset().union(*self.types.values())


def _provider_routes(p: str) -> list[Route]:
    syncers = frozenset({"scheduler", "api", "ingest", f"fetch-{p}", f"oauth-{p}"})
    return [
        Route(f"sync-requests-{p}", f"vault-{p}", {"sync.requested": syncers},
              "tenant, connection, scope of the sync, resume point"),
        Route(f"connection-control-{p}", f"vault-{p}",
              {"connection.disconnect": frozenset({"api"}),
               "identity.unlink": frozenset({"api"})},
              "tenant, connection, who asked for the disconnect; or tenant and user of an "
              "identity to unlink"),
        Route(f"fetch-jobs-{p}", f"fetch-{p}", {"fetch.job": frozenset({f"vault-{p}"})},
              "sealed app-token envelope (purpose fetch), connection, what to fetch, cursor"),
        Route(f"action-requests-{p}", f"vault-{p}",
              {"action.requested": frozenset({"api", f"act-{p}", "scheduler"})},
              "tenant, requesting user, action id, action (act-P: a fresh envelope for a "
              "pending action whose job it could not finish; scheduler: a queued action "
              "whose time has come)"),
        Route(f"action-jobs-{p}", f"act-{p}", {"action.job": frozenset({f"vault-{p}"})},
              "sealed personal-token envelope (purpose action), action id, action"),
        Route(f"events-{p}", "ingest",
              {"webhook.event": frozenset({f"webhook-{p}", f"vault-{p}"})},
              "verified webhook event (headers that matter + body), delivery id (vault-P: "
              "a delivery keyway missed, read from the provider's delivery log)"),
        Route(f"delivery-recovery-{p}", f"vault-{p}",
              {"deliveries.recover": frozenset({"scheduler"})},
              "tenant and connection (or the GitHub App's own webhook) whose provider delivery "
              "log to read for deliveries keyway missed"),
    ]


#: Components that record events the product is notified of (:mod:`shared.notify.events`),
#: and the scheduler, which republishes what the outbox still holds.
NOTIFIERS: frozenset[str] = frozenset(
    {"api", "scheduler", *(f"{kind}-{p}" for p in PROVIDERS
                           for kind in ("oauth", "vault", "fetch", "act"))})

ROUTES: dict[str, Route] = {
    r.topic: r
    for r in [
        *(route for p in PROVIDERS for route in _provider_routes(p)),
        Route("refresh-ticks", "scheduler", {"refresh.tick": frozenset({CLOUD_SCHEDULER})},
              "tick time"),
        Route("notifications", "notify", {"notification.event": NOTIFIERS},
              "one event for the tenant's webhook subscriptions: id, type, tenant, data"),
    ]
}


@dataclass(frozen=True)
class Outlet:
    """A topic keyway publishes to for consumers outside keyway: no keyway subscriber."""

    topic: str
    types: Mapping[str, frozenset[str]]
    carries: str

    @property
    def publishers(self) -> frozenset[str]:
        return frozenset().union(*self.types.values())


OUTLETS: dict[str, Outlet] = {
    o.topic: o
    for o in [
        Outlet("keyway-events", {"notification.event": frozenset({"notify"})},
               "every notification event, as delivered to webhook subscriptions"),
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


def _allowed(sender: str, topic: str, type_: str) -> Route | None:
    route = ROUTES.get(topic)
    if route is None or sender not in route.types.get(type_, frozenset()):
        return None
    return route


def check_publish(sender: str, topic: str, type_: str) -> Route | Outlet:
    """Raise ``PolicyViolation`` unless ``sender`` may publish ``type_`` on ``topic``."""
    outlet = OUTLETS.get(topic)
    if outlet is not None and sender in outlet.types.get(type_, frozenset()):
        return outlet
    route = _allowed(sender, topic, type_)
    if route is None:
        raise PolicyViolation(f"{sender} may not publish {type_} to {topic}",
                              key="policy.publish_refused")
    return route


def check_delivery(receiver: str, topic: str, sender: str, type_: str) -> Route:
    """Raise ``PolicyViolation`` unless ``receiver`` consumes ``topic`` and ``sender`` may send
    ``type_`` on it."""
    route = _allowed(sender, topic, type_)
    if route is None or route.subscriber != receiver:
        raise PolicyViolation(f"{receiver} refuses {type_} on {topic} from {sender}",
                              key="policy.delivery_refused")
    return route


def iam_bindings() -> list[tuple[str, str, str]]:
    """(topic, component, role) triples the Terraform must grant — and nothing more."""
    rows: list[tuple[str, str, str]] = []
    for topic, route in sorted(ROUTES.items()):
        for publisher in sorted(route.publishers):
            rows.append((topic, publisher, "roles/pubsub.publisher"))
        rows.append((topic, route.subscriber, "roles/pubsub.subscriber"))
    return rows


def outlet_bindings() -> list[tuple[str, str, str]]:
    """(outlet topic, component, role): publishing on the outlets, nothing else."""
    return [(topic, publisher, "roles/pubsub.publisher")
            for topic, outlet in sorted(OUTLETS.items())
            for publisher in sorted(outlet.publishers)]
