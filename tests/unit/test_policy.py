import pytest

from shared import messages, policy
from shared.components import COMPONENTS
from shared.errors import PolicyViolation


def test_only_the_vault_may_publish_fetch_jobs() -> None:
    policy.check_publish("vault-github", "fetch-jobs-github", "fetch.job")
    for sender in ("api", "scheduler", "vault-gitlab", "fetch-github", "webhook-github"):
        with pytest.raises(PolicyViolation):
            policy.check_publish(sender, "fetch-jobs-github", "fetch.job")


def test_action_jobs_go_only_from_the_providers_vault_to_its_actor() -> None:
    policy.check_delivery("act-gitlab", "action-jobs-gitlab", "vault-gitlab", "action.job")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("act-gitlab", "action-jobs-gitlab", "api", "action.job")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("fetch-gitlab", "action-jobs-gitlab", "vault-gitlab", "action.job")


def test_a_sender_allowed_on_a_topic_may_send_only_its_own_message_types() -> None:
    policy.check_publish("api", "connection-control-github", "connection.disconnect")
    with pytest.raises(PolicyViolation):
        policy.check_publish("scheduler", "connection-control-github", "connection.disconnect")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("vault-github", "connection-control-github", "ingest",
                              "connection.disconnect")


def test_every_message_type_on_a_topic_is_allowed_to_every_publisher_of_that_topic() -> None:
    """IAM grants publishing per topic and the ``sender`` attribute is self-asserted, so a type
    reserved to fewer publishers than its topic has could be forged by the others."""
    for topic, route in policy.ROUTES.items():
        for type_, senders in route.types.items():
            assert senders == route.publishers, (topic, type_, sorted(senders))


def test_a_route_mixing_publisher_sets_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="every publisher"):
        policy.Route("sync-requests-github", "vault-github",
                     {"sync.requested": frozenset({"api", "scheduler"}),
                      "connection.disconnect": frozenset({"api"})}, "mixed")


def test_a_disconnect_is_never_carried_on_sync_requests() -> None:
    for p in policy.PROVIDERS:
        assert set(policy.ROUTES[f"sync-requests-{p}"].types) == {"sync.requested"}
        control = policy.ROUTES[f"connection-control-{p}"]
        assert control.publishers == {"api"} and control.subscriber == f"vault-{p}"
        with pytest.raises(PolicyViolation):  # even claiming to be api
            policy.check_delivery(f"vault-{p}", f"sync-requests-{p}", "api",
                                  "connection.disconnect")


def test_an_unknown_topic_or_type_is_refused() -> None:
    with pytest.raises(PolicyViolation):
        policy.check_publish("api", "tokens-please", "sync.requested")
    with pytest.raises(PolicyViolation):
        policy.check_publish("api", "sync-requests-github", "token.please")


def test_iam_bindings_grant_exactly_the_publishers_and_subscriber_in_the_table() -> None:
    bindings = policy.iam_bindings()
    publishers = {(t, who) for t, who, role in bindings if role == "roles/pubsub.publisher"}
    expected = {(t, p) for t, r in policy.ROUTES.items() for p in r.publishers}
    assert publishers == expected
    assert ("fetch-jobs-github", "api") not in publishers
    subscribers = {(t, who) for t, who, role in bindings if role == "roles/pubsub.subscriber"}
    assert subscribers == {(t, r.subscriber) for t, r in policy.ROUTES.items()}


class _UntouchableBus:
    """A bus that fails the test if anything on it is used."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the bus was touched ({name}) before the policy check")


def test_no_component_but_the_api_can_publish_a_disconnect_and_the_bus_is_never_touched():
    senders = sorted({*COMPONENTS, policy.CLOUD_SCHEDULER} - {"api"})
    body = {"tenant": "t-1", "connection": "c-1"}
    for p in policy.PROVIDERS:
        for topic in (f"connection-control-{p}", f"sync-requests-{p}"):
            for sender in senders:
                with pytest.raises(PolicyViolation) as refused:
                    messages.publish(_UntouchableBus(), sender, topic, "connection.disconnect",
                                     body)
                assert refused.value.key == "policy.publish_refused"
        with pytest.raises(PolicyViolation):  # nor the api on the topic the others share
            messages.publish(_UntouchableBus(), "api", f"sync-requests-{p}",
                             "connection.disconnect", body)
