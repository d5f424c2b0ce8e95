import pytest

from shared import policy
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
    policy.check_publish("api", "sync-requests-github", "connection.disconnect")
    with pytest.raises(PolicyViolation):
        policy.check_publish("scheduler", "sync-requests-github", "connection.disconnect")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("vault-github", "sync-requests-github", "ingest",
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
