"""Write pacing end to end: the api → vault-P → act-P → the GitHub simulator over HTTP, which
enforces GitHub's content-creation limits (80 a minute, 500 an hour per user). vault-P, act-P
and the scheduler's queue sweep run on one injected clock, shared with the simulator, so
"a minute later" is a clock move, never a sleep."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from keyway.simulators.oauth_model import Account
from shared import messages, policy
from shared.acting import acting_as
from shared.actions import handler as act
from shared.clock import parse_iso
from shared.errors import UnavailableError
from shared.scheduler import abandoned, queued
from shared.vault import handlers as vault_handlers
from tests.integration.test_actions import MEMBER, Setup
from tests.support import FakeClock

SECOND = Account("lisa", 888, "Lisa")


class Paced(Setup):
    """Setup, with vault-P, act-P and the queue sweep run on ``clock``."""

    def __init__(self, stack, sim, clock: FakeClock, provider: str = "github") -> None:
        super().__init__(stack, sim, provider)
        self.clock = clock
        self.timed = dataclasses.replace(stack.ports, clock=clock)

    def drain(self, topic: str) -> list[messages.Inbound]:
        got: list = []
        while self.ports.bus.pull(policy.subscription_name(topic), got.append,
                                  max_messages=50):
            pass
        return [messages.decode(topic, m.data, m.attributes, m.message_id) for m in got]

    def work(self, step: float = 0.1) -> None:
        """Carry every action request through vault-P and act-P, ``step`` seconds apart."""
        p = self.provider
        for requested in self.drain(f"action-requests-{p}"):
            with acting_as(f"vault-{p}"):
                vault_handlers.on_action_requested(p, self.timed, requested)
            for job in self.drain(f"action-jobs-{p}"):
                with acting_as(f"act-{p}"):
                    act.on_action_job(p, self.timed, job)
            self.clock.advance(step)

    def tick(self) -> int:
        with acting_as("scheduler"):
            asked = queued.sweep(self.timed, self.clock.now())
        self.work()
        return asked

    def posted(self, account: Account) -> list[dict]:
        """The thread's comments by ``account``, every page."""
        token = self.sim.oauth.mint(account=account, scopes=("repo",)).access_token
        url = f"{self.sim.api_url}/repos/{self.repo['full_name']}/issues/1/comments"
        found, page = [], 1
        while batch := requests.get(url, params={"per_page": 100, "page": page}, timeout=10,
                                    headers={"Authorization": f"Bearer {token}"}).json():
            found += batch
            page += 1
        return [c for c in found if c["user"]["login"] == account.login]


def _paced(stack, leak_guard, sim_class, provider: str):
    clock = FakeClock()
    clock._now = datetime.now(UTC)  # envelopes and tokens are sealed and checked on it
    sim = sim_class(on_issue=leak_guard.track, clock=lambda: clock.now().timestamp())
    sim.start()
    yield Paced(stack, sim, clock, provider)
    sim.stop()


@pytest.fixture
def paced(local_stack, leak_guard):
    yield from _paced(local_stack, leak_guard, GitHubSimulator, "github")


@pytest.fixture
def paced_gitlab(local_stack, leak_guard):
    yield from _paced(local_stack, leak_guard, GitLabSimulator, "gitlab")


def statuses(paced: Paced, ids: list[str]) -> list[dict]:
    return [paced.status(action_id)[1] for action_id in ids]


def test_a_burst_of_100_posts_80_in_the_minute_queues_20_and_posts_each_once(paced):
    start = paced.clock.now()
    ids = [paced.request(action_id=f"burst-{n:03d}", body=f"note {n}")[1]["id"]
           for n in range(100)]
    paced.work()
    shown = statuses(paced, ids)
    done = [a for a in shown if a["status"] == "done"]
    waiting = [a for a in shown if a["status"] == "pending"]
    assert (len(done), len(waiting)) == (80, 20)
    assert len(paced.posted(MEMBER)) == 80
    for action in waiting:  # not posted, and saying when it will be tried
        assert action["queued_until"] is not None and action["last_error"] == "action.paced"
        assert parse_iso(action["queued_until"]) >= start + timedelta(seconds=60)
    assert all(a["queued_until"] is None for a in done)
    assert paced.tick() == 0  # nothing is due inside the minute
    for _ in range(30):  # then the window slides: the queue drains as slots free
        paced.clock.advance(5)
        paced.tick()
        if all(a["status"] == "done" for a in statuses(paced, ids)):
            break
    assert all(a["status"] == "done" for a in statuses(paced, ids))
    comments = paced.posted(MEMBER)
    assert len(comments) == 100  # the simulator's count: each action exactly once
    assert paced.sim.content_limits.created(MEMBER.id) == 100
    assert sorted(c["body"].split("keyway-action:")[1].split(" ")[0] for c in comments) == ids
    assert paced.sim.content_limits.refused == 0  # never refused: paced below GitHub's limit
    assert paced.clock.now() - start >= timedelta(seconds=60)


def test_a_secondary_limit_answer_queues_the_action_and_it_posts_once_later(paced):
    paced.sim.rate_limit_next(status=403, retry_after=120, secondary=True)
    _, action = paced.request(action_id="limited-1")
    before = paced.clock.now()
    paced.work()
    _, shown = paced.status(action["id"])
    assert (shown["status"], shown["last_error"]) == ("pending", "provider.rate_limited")
    assert parse_iso(shown["queued_until"]) == before + timedelta(seconds=120)
    assert paced.posted(MEMBER) == []
    paced.clock.advance(60)
    assert paced.tick() == 0  # not before GitHub's Retry-After
    _, other = paced.request(action_id="limited-2")  # the pause holds the member's other posts
    paced.work()
    assert paced.status(other["id"])[1]["status"] == "pending"
    paced.clock.advance(61)
    assert paced.tick() == 2
    assert [paced.status(i)[1]["status"] for i in ("limited-1", "limited-2")] == ["done"] * 2
    assert len(paced.posted(MEMBER)) == 2  # one each: the retry looked for its marker first


def test_two_members_do_not_share_a_write_budget(paced):
    paced.link("member-2", SECOND)
    for n in range(81):
        paced.request(action_id=f"mine-{n}")
    paced.work()
    mine = paced.status("mine-80")[1]
    assert mine["queued_until"] is not None and mine["last_error"] == "action.paced"
    _, theirs = paced.request(user="member-2", action_id="theirs-1")
    paced.work()
    assert paced.status(theirs["id"])[1]["status"] == "done"
    assert len(paced.posted(SECOND)) == 1 and len(paced.posted(MEMBER)) == 80


def test_a_queued_action_is_not_abandoned_while_it_waits(paced):
    for n in range(81):
        paced.request(action_id=f"long-{n}")
    paced.work()
    assert paced.status("long-80")[1]["queued_until"] is not None
    later = paced.clock.now() + abandoned.DEADLINE + timedelta(minutes=1)
    assert abandoned.sweep(paced.timed, later) == 0  # queued: the tick asks for it again
    assert paced.status("long-80")[1]["status"] == "pending"


def test_a_gitlab_429_queues_the_note_until_its_retry_after_and_it_posts_once(paced_gitlab):
    paced_gitlab.sim.rate_limit_next(status=429, retry_after=30)
    before = paced_gitlab.clock.now()
    _, action = paced_gitlab.request(action_id="note-1")
    paced_gitlab.work()
    _, shown = paced_gitlab.status(action["id"])
    assert (shown["status"], shown["last_error"]) == ("pending", "provider.rate_limited")
    assert parse_iso(shown["queued_until"]) == before + timedelta(seconds=30)
    assert paced_gitlab.comments() == []
    paced_gitlab.clock.advance(31)
    with acting_as("scheduler"):  # claimed once: a second (or redelivered) tick asks nothing
        asked = [queued.sweep(paced_gitlab.timed, paced_gitlab.clock.now()) for _ in "ab"]
    assert asked == [1, 0]
    paced_gitlab.work()
    assert paced_gitlab.status(action["id"])[1]["status"] == "done"
    assert len(paced_gitlab.comments()) == 1


class _BusDown:
    """The bus, refusing every publish."""

    def __init__(self, bus) -> None:
        self._bus = bus

    def publish(self, *args, **kwargs):
        raise UnavailableError("bus down", key="bus.unavailable")

    def __getattr__(self, name):
        return getattr(self._bus, name)


def test_a_requeue_whose_publish_fails_stays_queued_for_the_next_tick(paced_gitlab):
    paced_gitlab.sim.rate_limit_next(status=429, retry_after=30)
    _, action = paced_gitlab.request(action_id="note-2")
    paced_gitlab.work()
    paced_gitlab.clock.advance(31)
    broken = dataclasses.replace(paced_gitlab.timed, bus=_BusDown(paced_gitlab.timed.bus))
    with acting_as("scheduler"), pytest.raises(UnavailableError):
        queued.sweep(broken, paced_gitlab.clock.now())  # raised: the tick is redelivered
    assert paced_gitlab.status(action["id"])[1]["queued_until"] is not None
    assert paced_gitlab.tick() == 1
    assert paced_gitlab.status(action["id"])[1]["status"] == "done"
    assert len(paced_gitlab.comments()) == 1
