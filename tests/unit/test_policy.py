import pytest

from shared import policy
from shared.errors import PolicyViolation


def test_only_the_vault_may_publish_fetch_jobs() -> None:
    policy.check_publish("vault-github", "fetch-jobs-github")
    for sender in ("api", "scheduler", "vault-gitlab", "fetch-github", "webhook-github"):
        with pytest.raises(PolicyViolation):
            policy.check_publish(sender, "fetch-jobs-github")


def test_action_jobs_go_only_from_the_providers_vault_to_its_actor() -> None:
    policy.check_delivery("act-gitlab", "action-jobs-gitlab", "vault-gitlab")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("act-gitlab", "action-jobs-gitlab", "api")
    with pytest.raises(PolicyViolation):
        policy.check_delivery("fetch-gitlab", "action-jobs-gitlab", "vault-gitlab")


def test_an_unknown_topic_is_refused() -> None:
    with pytest.raises(PolicyViolation):
        policy.check_publish("api", "tokens-please")


def test_iam_bindings_grant_exactly_the_publishers_in_the_table() -> None:
    bindings = policy.iam_bindings()
    granted = {(topic, who) for topic, who, _ in bindings}
    expected = {(t, p) for t, r in policy.ROUTES.items() for p in r.publishers}
    assert granted == expected
    assert ("fetch-jobs-github", "api") not in granted
