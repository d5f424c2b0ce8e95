"""The per-token rate budget on the real embedded store: a reserve for webhooks and actions, a
cap on concurrent requests, leases that expire, one budget shared by every instance, and the
provider rate-limit headers read the way the provider table says."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest

from shared.bootstrap import build
from shared.config import Config
from shared.errors import InvalidInput
from shared.fetch.budget import (
    TokenBudget,
    answer_resource,
    budget_key,
    is_rate_limited,
    read_rate_headers,
    retry_at,
)
from shared.fetch.errors import BudgetExhausted
from shared.providers import registry
from tests.support import FakeClock

KEY = budget_key("github", "conn-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def store_at(path):
    """One "instance": its own store adapter over the shared state directory."""
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(path)})).business


@pytest.fixture
def store(tmp_path):
    return store_at(tmp_path)


def observed(budget: TokenBudget, clock: FakeClock, remaining: int, limit: int = 5000):
    reset = clock.now() + timedelta(hours=1)
    budget.observe(limit=limit, remaining=remaining, reset_at=reset)
    return reset


def test_a_budget_never_observed_allows_every_purpose(store, clock):
    budget = TokenBudget(store, clock, KEY)
    leases = [budget.acquire(p) for p in ("fetch", "webhook", "action")]
    assert len(set(leases)) == 3 and budget.blocked_until() is None
    assert budget.snapshot()["in_flight"] == 3 and budget.snapshot()["remaining"] is None


def test_fetch_stops_at_the_reserve_but_webhooks_and_actions_may_spend_it(store, clock):
    budget = TokenBudget(store, clock, KEY, reserve=10, max_concurrent=50)
    reset = observed(budget, clock, remaining=12)
    budget.acquire("fetch")
    budget.acquire("fetch")  # 12 - 1 in flight = 11 > 10
    with pytest.raises(BudgetExhausted) as refused:  # 12 - 2 = 10: the reserve
        budget.acquire("fetch")
    assert refused.value.retry_at == reset and refused.value.key == "budget.exhausted"
    for purpose in ["webhook", "action"] * 5:  # the reserve: 10 more
        budget.acquire(purpose)
    for purpose in ("webhook", "action"):  # never below 0
        with pytest.raises(BudgetExhausted):
            budget.acquire(purpose)


def test_released_leases_and_fresh_observations_reopen_fetches(store, clock):
    budget = TokenBudget(store, clock, KEY, reserve=10)
    observed(budget, clock, remaining=11)
    lease = budget.acquire()
    with pytest.raises(BudgetExhausted):
        budget.acquire()
    budget.release(lease)
    budget.release(lease)  # idempotent
    budget.release("no-such-lease")
    assert budget.acquire()


def test_blocked_until_returns_the_reset_when_exhausted_and_none_after_it(store, clock):
    budget = TokenBudget(store, clock, KEY, reserve=5)
    assert budget.blocked_until() is None
    reset = observed(budget, clock, remaining=3)
    assert budget.blocked_until() == reset
    assert budget.snapshot()["blocked_until"] is not None
    clock.advance(3601)  # the window reset: remaining is back to the limit
    assert budget.blocked_until() is None and budget.snapshot()["remaining"] == 5000
    assert budget.acquire("fetch")


def test_concurrency_cap_holds_across_eight_threads(store, clock):
    in_flight, peak, done, lock = 0, 0, 0, threading.Lock()

    def worker() -> None:
        nonlocal in_flight, peak, done
        budget = TokenBudget(store, clock, KEY, max_concurrent=2)
        for _ in range(4):
            while True:
                try:
                    lease = budget.acquire("fetch")
                    break
                except BudgetExhausted as e:
                    assert e.retry_at == clock.now() + timedelta(seconds=2)
                    time.sleep(0.002)
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.01)
            with lock:
                in_flight -= 1
                done += 1
            budget.release(lease)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert done == 32 and peak == 2  # the cap was reached and never exceeded
    assert TokenBudget(store, clock, KEY).snapshot()["in_flight"] == 0


def test_an_expired_lease_frees_its_slot(store, clock):
    budget = TokenBudget(store, clock, KEY, max_concurrent=1, lease_seconds=30)
    budget.acquire()  # an instance that crashes and never releases
    with pytest.raises(BudgetExhausted) as full:
        budget.acquire()
    assert full.value.retry_at == clock.now() + timedelta(seconds=2)
    clock.advance(31)
    assert budget.acquire() and budget.snapshot()["in_flight"] == 1


def test_two_instances_share_one_budget(tmp_path, clock):
    first = TokenBudget(store_at(tmp_path), clock, KEY, reserve=10)
    second = TokenBudget(store_at(tmp_path), clock, KEY, reserve=10)
    reset = observed(first, clock, remaining=12)
    assert second.snapshot()["remaining"] == 12
    second.acquire()
    second.acquire()
    with pytest.raises(BudgetExhausted):
        first.acquire()  # the other instance's requests in flight count here too
    second.observe(limit=5000, remaining=4, reset_at=reset)
    assert first.blocked_until() == reset


def test_an_older_window_is_ignored_and_one_window_keeps_the_lowest(store, clock):
    budget = TokenBudget(store, clock, KEY)
    reset = observed(budget, clock, remaining=50)
    budget.observe(limit=5000, remaining=90, reset_at=reset - timedelta(hours=1, seconds=-1))
    budget.observe(limit=5000, remaining=60, reset_at=reset)  # arrived out of order
    budget.observe(limit=5000, remaining=70, reset_at=reset + timedelta(seconds=1))  # jitter
    assert budget.snapshot()["remaining"] == 50
    budget.observe(limit=5000, remaining=40, reset_at=reset)
    assert budget.snapshot()["remaining"] == 40
    budget.observe(limit=5000, remaining=4999, reset_at=reset + timedelta(hours=1))
    assert budget.snapshot()["remaining"] == 4999  # a new window replaces the old one


def test_budget_key_is_built_from_names_never_from_a_token():
    assert budget_key("github", "conn-1") == "github:conn-1:app"
    assert "/" not in budget_key("gitlab", "team/a", "personal")
    for bad in ("ghp_" + "a" * 36, "glpat-" + "b" * 20, ""):
        with pytest.raises(InvalidInput) as refused:
            budget_key("github", bad)
        assert not bad or bad not in str(refused.value)


def test_each_rate_limit_resource_has_its_own_budget_under_its_own_key(store, clock):
    core = TokenBudget(store, clock, KEY, reserve=10, max_concurrent=3)
    points = core.for_resource("graphql")
    assert points.key == budget_key("github", "conn-1", resource="graphql") == KEY + ":graphql"
    assert budget_key("github", "conn-1", resource="core") == KEY  # REST keeps its key
    assert (points.reserve, points.max_concurrent) == (10, 3)
    assert core.for_resource("graphql") is points and core.for_resource("core") is core
    observed(core, clock, remaining=5)  # REST spent down to its reserve
    with pytest.raises(BudgetExhausted):
        core.acquire("fetch")
    points.release(points.acquire("fetch"))  # GraphQL is not
    observed(points, clock, remaining=11)
    assert core.snapshot()["remaining"] == 5 and points.snapshot()["remaining"] == 11


@pytest.mark.parametrize("resource", ["", "GraphQL", "a:b", "x" * 40, "gho_" + "a" * 36])
def test_a_resource_must_be_a_short_lowercase_name(store, clock, resource):
    with pytest.raises(InvalidInput):
        budget_key("github", "conn-1", resource=resource)
    with pytest.raises(InvalidInput):
        TokenBudget(store, clock, KEY).for_resource(resource)


def test_other_resources_are_reached_from_the_core_budget_only(store, clock):
    points = TokenBudget(store, clock, KEY).for_resource("graphql")
    with pytest.raises(InvalidInput):
        points.for_resource("search")


def test_the_resource_an_answer_names_is_read_from_the_table_header():
    assert answer_resource(GITHUB_RATE, {"X-RateLimit-Resource": "graphql"}) == "graphql"
    assert answer_resource(GITHUB_RATE, {"X-RateLimit-Resource": "Core "}) == "core"
    assert answer_resource(GITHUB_RATE, {"X-RateLimit-Resource": "../x"}) is None
    assert answer_resource(GITHUB_RATE, {}) is None
    assert answer_resource(GITLAB_RATE, {"X-RateLimit-Resource": "graphql"}) is None


def test_settings_and_purposes_are_validated(store, clock):
    with pytest.raises(InvalidInput):
        TokenBudget(store, clock, KEY, max_concurrent=0)
    with pytest.raises(InvalidInput):
        TokenBudget(store, clock, KEY).acquire("refresh")  # type: ignore[arg-type]


# ---- reading the provider's rate-limit headers ----------------------------------------------
GITHUB_RATE = registry.get("github").api.rate_limit
GITLAB_RATE = registry.get("gitlab").api.rate_limit


def test_rate_headers_are_read_in_each_reset_style(clock):
    now = clock.now()
    epoch = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "17",
             "X-RateLimit-Reset": str(int(now.timestamp()) + 600)}
    assert read_rate_headers(GITHUB_RATE, epoch, now) == (5000, 17, now + timedelta(minutes=10))
    relative = dataclasses.replace(GITLAB_RATE, reset_style="seconds_from_now")
    headers = {"RateLimit-Limit": "2000", "RateLimit-Remaining": "3", "RateLimit-Reset": "30"}
    assert read_rate_headers(relative, headers, now)[2] == now + timedelta(seconds=30)
    iso = dataclasses.replace(GITHUB_RATE, reset_style="iso8601")
    stamp = {**epoch, "X-RateLimit-Reset": "2030-01-01T00:05:00Z"}
    assert read_rate_headers(iso, stamp, now)[2] == now + timedelta(minutes=5)
    assert read_rate_headers(GITHUB_RATE, {"X-RateLimit-Limit": "x"}, now) is None


def test_retry_at_prefers_retry_after_then_the_reset_then_a_minute(clock):
    now = clock.now()
    assert retry_at(GITHUB_RATE, {"Retry-After": "42"}, now) == now + timedelta(seconds=42)
    date = format_datetime(now + timedelta(minutes=3), usegmt=True)
    assert retry_at(GITHUB_RATE, {"Retry-After": date}, now) == now + timedelta(minutes=3)
    reset = {"X-RateLimit-Reset": str(int(now.timestamp()) + 900)}
    assert retry_at(GITHUB_RATE, reset, now) == now + timedelta(minutes=15)
    assert retry_at(GITHUB_RATE, {}, now) == now + timedelta(seconds=60)


def test_rate_limited_answers_are_recognised():
    assert is_rate_limited(GITLAB_RATE, 429, {}, None)
    assert is_rate_limited(GITHUB_RATE, 403, {"Retry-After": "1"}, None)
    assert is_rate_limited(GITHUB_RATE, 403, {"X-RateLimit-Remaining": "0"}, None)
    assert is_rate_limited(GITHUB_RATE, 403, {}, b"You have exceeded a Secondary Rate Limit")
    assert not is_rate_limited(GITHUB_RATE, 403, {"X-RateLimit-Remaining": "10"}, b"no access")


# ---- a budget counted locally (Bitbucket sends no remaining quota) ---------------------------
BITBUCKET = registry.get("bitbucket").api.rate_limit


def test_a_provider_without_quota_headers_is_never_read_from_headers(clock):
    headers = {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "3",
               "X-RateLimit-Reset": "9999999999"}
    assert read_rate_headers(BITBUCKET, headers, clock.now()) is None
    assert is_rate_limited(BITBUCKET, 429, {}, b"Rate limit for this resource has been exceeded")
    assert not is_rate_limited(BITBUCKET, 403, {}, b"")
    assert retry_at(BITBUCKET, {}, clock.now()) == clock.now() + timedelta(seconds=60)
    assert retry_at(BITBUCKET, {"Retry-After": "30"}, clock.now()) == \
        clock.now() + timedelta(seconds=30)


def test_a_counted_budget_stops_fetches_at_the_reserve_until_its_window_closes(store, clock):
    budget = TokenBudget(store, clock, budget_key("bitbucket", "conn-1"), reserve=2)
    window = timedelta(hours=1)
    for _ in range(7):
        budget.release(budget.acquire("fetch"))
        budget.count(limit=10, window=window)
    assert budget.snapshot()["remaining"] == 3
    budget.release(budget.acquire("fetch"))
    budget.count(limit=10, window=window)
    with pytest.raises(BudgetExhausted) as refused:  # 2 left: the reserve
        budget.acquire("fetch")
    assert refused.value.retry_at == clock.now() + window  # the window opened at the first
    budget.release(budget.acquire("action"))  # actions may spend the reserve
    clock.advance(3600)
    budget.count(limit=10, window=window)  # a new window, opened by this request
    assert budget.snapshot()["remaining"] == 9 and budget.blocked_until() is None


def test_a_429_without_headers_exhausts_the_budget_until_the_retry_time(store, clock):
    budget = TokenBudget(store, clock, budget_key("bitbucket", "conn-1"))
    budget.count(limit=1000, window=timedelta(hours=1))
    until = clock.now() + timedelta(seconds=60)
    budget.exhaust(until, 1000)
    for purpose in ("fetch", "webhook", "action"):
        with pytest.raises(BudgetExhausted) as refused:
            budget.acquire(purpose)
        assert refused.value.retry_at == until
    clock.advance(61)
    budget.release(budget.acquire("fetch"))
    with pytest.raises(InvalidInput):
        budget.count(limit=0, window=timedelta(hours=1))


def test_a_release_records_the_answers_headers_by_the_same_rules_as_observe(store, clock):
    """release(lease, observation) drops the lease and merges the reading in one transaction:
    a newer reading in the same window lowers remaining, an older window's is ignored (the
    lease is dropped all the same), and a bad reading is refused before anything is written."""
    budget = TokenBudget(store, clock, KEY, reserve=10)
    reset = observed(budget, clock, remaining=1000)
    lease = budget.acquire("fetch")
    budget.release(lease, (5000, 990, reset))
    assert budget.snapshot()["remaining"] == 990 and budget.snapshot()["in_flight"] == 0
    lease = budget.acquire("fetch")
    budget.release(lease, (5000, 4999, reset - timedelta(hours=2)))  # an older window
    assert budget.snapshot()["remaining"] == 990 and budget.snapshot()["in_flight"] == 0
    lease = budget.acquire("fetch")
    with pytest.raises(InvalidInput):
        budget.release(lease, (-1, 0, reset))
    assert budget.snapshot()["in_flight"] == 1  # nothing written; the lease expires on its own
    budget.release("unknown-lease", (5000, 980, reset))  # an unknown lease still records
    assert budget.snapshot()["remaining"] == 980
