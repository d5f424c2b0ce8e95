"""The fetch budget grants requests in blocks: one store transaction per block instead of two
per request, a block counts as spent for every other instance while it is held, answers at
the floor end it, an unreturned block expires with its lease, and grants never take the
budget below its reserve."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.fetch import _blocks
from shared.fetch.budget import COLLECTION, TokenBudget, budget_key
from shared.fetch.errors import BudgetExhausted
from tests.store_wrappers import WriteRecorder
from tests.support import FakeClock

KEY = budget_key("github", "conn-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock) -> WriteRecorder:
    return WriteRecorder(SqliteDocumentStore(tmp_path / "business.db"), clock.monotonic)


def budget_writes(store: WriteRecorder) -> int:
    return len(store.writes.get((COLLECTION, KEY), []))


def reading(clock: FakeClock, remaining: int, limit: int = 5000):
    return (limit, remaining, clock.now() + timedelta(hours=1))


def test_a_block_of_requests_costs_one_store_write(store, clock):
    budget = TokenBudget(store, clock, KEY, blocks=True)
    for n in range(_blocks.FIRST_BLOCK):
        budget.release(budget.acquire(), reading(clock, 4000 - n))
    assert budget_writes(store) == 1
    budget.release(budget.acquire(), reading(clock, 3000))
    assert budget_writes(store) == 2  # the next block, with the readings folded in
    assert store.get(COLLECTION, KEY)["remaining"] == 4000 - _blocks.FIRST_BLOCK + 1


def test_without_blocks_every_request_costs_two_writes(store, clock):
    budget = TokenBudget(store, clock, KEY)
    for n in range(5):
        budget.release(budget.acquire(), reading(clock, 4000 - n))
    assert budget_writes(store) == 10


def test_a_held_block_counts_as_spent_for_other_instances(store, clock):
    TokenBudget(store, clock, KEY).observe(limit=5000, remaining=105,
                                           reset_at=clock.now() + timedelta(hours=1))
    holder = TokenBudget(store, clock, KEY, blocks=True)  # reserve 100: 5 spendable
    grants = [holder.acquire() for _ in range(4)]
    with pytest.raises(BudgetExhausted, match="in flight"):  # the cap holds inside a block
        holder.acquire()
    with pytest.raises(BudgetExhausted):
        TokenBudget(store, clock, KEY).acquire("fetch")  # another instance: nothing left
    assert TokenBudget(store, clock, KEY).acquire("webhook")  # the reserve is still there
    for n, grant in enumerate(grants):
        holder.release(grant, reading(clock, 104 - n))
    holder.release(holder.acquire(), reading(clock, 100))
    with pytest.raises(BudgetExhausted, match="floor"):
        holder.acquire()  # the block is used up and the store has no more


def test_two_instances_never_spend_the_reserve(store, clock):
    provider = {"remaining": 160}
    TokenBudget(store, clock, KEY).observe(limit=5000, remaining=160,
                                           reset_at=clock.now() + timedelta(hours=1))
    instances = [TokenBudget(store, clock, KEY, blocks=True) for _ in range(2)]
    refused = [False, False]
    while not all(refused):
        for n, budget in enumerate(instances):
            try:
                grant = budget.acquire()
            except BudgetExhausted:
                refused[n] = True
                continue
            refused[n] = False
            provider["remaining"] -= 1  # the request, as the provider counts it
            assert provider["remaining"] >= budget.reserve
            budget.release(grant, reading(clock, provider["remaining"]))
            clock.advance(0.05)
    assert provider["remaining"] == 100  # everything above the reserve, nothing of it


def test_an_answer_at_the_floor_ends_the_block(store, clock):
    budget = TokenBudget(store, clock, KEY, blocks=True)
    budget.release(budget.acquire(), reading(clock, 4000))
    budget.release(budget.acquire(), reading(clock, 100))  # someone else spent the rest
    with pytest.raises(BudgetExhausted):
        budget.acquire()  # not from the 8 grants left: the store is asked, and refuses


def test_an_unreturned_block_expires_with_its_lease(store, clock):
    TokenBudget(store, clock, KEY).observe(limit=5000, remaining=110,
                                           reset_at=clock.now() + timedelta(hours=1))
    TokenBudget(store, clock, KEY, blocks=True).acquire()  # its process dies holding 10
    other = TokenBudget(store, clock, KEY)
    with pytest.raises(BudgetExhausted):
        other.acquire()
    clock.advance(61)
    assert other.acquire()


def test_close_returns_unused_grants_and_folds_the_readings(store, clock):
    budget = TokenBudget(store, clock, KEY, blocks=True)
    for remaining in (4000, 3990, 3995):
        budget.release(budget.acquire(), reading(clock, remaining))
    budget.close()
    doc = store.get(COLLECTION, KEY)
    assert doc["leases"] == {} and doc["remaining"] == 3990  # lowest of one window wins
    budget.close()  # nothing held, nothing pending: no write
    assert budget_writes(store) == 2


def test_a_locally_counted_budget_spends_exactly_what_was_counted(store, clock):
    key = budget_key("bitbucket", "conn-1")
    budget = TokenBudget(store, clock, key, blocks=True, reserve=0)
    for _ in range(25):
        grant = budget.acquire()
        budget.count(limit=1000, window=timedelta(hours=1))  # as the client does per answer
        budget.release(grant)
    budget.close()
    assert store.get(COLLECTION, key)["remaining"] == 1000 - 25
    assert len(store.writes[(COLLECTION, key)]) <= 4  # three blocks and the return


def test_blocks_grow_with_the_request_rate_so_the_document_stays_cool(store, clock):
    budget = TokenBudget(store, clock, KEY, blocks=True)
    for n in range(1000):  # 50 requests a second for 20 seconds
        budget.release(budget.acquire(), reading(clock, 4999 - n))
        clock.advance(0.02)
    budget.close()
    assert store.hot_documents() == {}
    assert budget_writes(store) <= 20 / _blocks.BLOCK_SECONDS + 3
    assert store.get(COLLECTION, KEY)["remaining"] == 4000


def test_graphql_readings_of_a_sibling_resource_are_kept_until_close(store, clock):
    budget = TokenBudget(store, clock, KEY, blocks=True)
    graphql = budget.for_resource("graphql")
    graphql.observe(limit=5000, remaining=4321, reset_at=clock.now() + timedelta(hours=1))
    assert store.get(COLLECTION, graphql.key) is None
    budget.close()
    assert store.get(COLLECTION, graphql.key)["remaining"] == 4321
