"""Write pacing: a burst of comment actions by one member against the GitHub simulator, which
enforces GitHub's content-creation limits (80 a minute, 500 an hour per user) and counts what
it refuses.

The path is the real one — the API's ``POST /api/v1/actions``, vault-P, act-P, the scheduler's
queue sweep — on the integration tests' embedded stack (``tests/integration``), with vault-P,
act-P, the sweep and the simulator on one fake clock: "a minute later" is a clock move, so the
part takes seconds, not minutes. Measured: how many posted in the first minute, how many were
queued with a ``queued_until``, when the last one posted (simulated time), comments per action
(the simulator's count: each exactly once) and the simulator's refusals (goal 0).
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyway.simulators import GitHubSimulator
from shared.clock import parse_iso
from tests.integration.conftest import _reset_caches, build_stack
from tests.integration.test_action_pacing import Paced, statuses
from tests.integration.test_actions import MEMBER
from tests.leakguard import LeakGuard
from tests.support import FakeClock

BURST = 120
STEP = 5.0  # simulated seconds between queue sweeps while the queue drains
MAX_SWEEPS = 200


def _burst(paced: Paced) -> dict:
    start = paced.clock.now()
    ids = [paced.request(action_id=f"bench-{n:03d}", body=f"note {n}")[1]["id"]
           for n in range(BURST)]
    paced.work()
    first = statuses(paced, ids)
    in_minute = paced.clock.now() - start < timedelta(seconds=60)
    done_first = sum(1 for a in first if a["status"] == "done")
    queued = [a for a in first if a["status"] == "pending" and a["queued_until"]]
    earliest = min((parse_iso(a["queued_until"]) for a in queued), default=None)
    sweeps = 0
    while sweeps < MAX_SWEEPS and not all(a["status"] == "done"
                                          for a in statuses(paced, ids)):
        paced.clock.advance(STEP)
        paced.tick()
        sweeps += 1
    final = statuses(paced, ids)
    comments = paced.posted(MEMBER)
    markers = [c["body"].split("keyway-action:")[1].split(" ")[0] for c in comments
               if "keyway-action:" in c["body"]]
    return {
        "actions": BURST, "posted_in_first_minute": done_first,
        "first_pass_within_a_minute": in_minute,
        "queued_with_queued_until": len(queued),
        "first_queued_until_after_s": round((earliest - start).total_seconds(), 1)
        if earliest else None,
        "done_at_end": sum(1 for a in final if a["status"] == "done"),
        "last_posted_after_simulated_s": round((paced.clock.now() - start).total_seconds(), 1),
        "comments_posted": len(comments), "distinct_actions_posted": len(set(markers)),
        "posted_twice": len(markers) - len(set(markers)),
        "simulator_created": paced.sim.content_limits.created(MEMBER.id),
        "simulator_refused": paced.sim.content_limits.refused,
    }


def run() -> dict:
    quiet = logging.getLogger("shared.auth.local_issuer")  # one INFO line per API call
    level, quiet.level = quiet.level, logging.WARNING
    try:
        return _run()
    finally:
        quiet.setLevel(level)


def _run() -> dict:
    monkeypatch, guard = pytest.MonkeyPatch(), LeakGuard()
    clock = FakeClock()
    clock._now = datetime.now(UTC)  # envelopes and tokens are sealed and checked on it
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keyway-bench-pacing-") as tmp:
        sim = GitHubSimulator(on_issue=guard.track, clock=lambda: clock.now().timestamp())
        try:
            stack = build_stack(Path(tmp), monkeypatch, guard)
            sim.start()
            measured = _burst(Paced(stack, sim, clock, "github"))
        finally:
            sim.stop()
            monkeypatch.undo()
            _reset_caches()
    goal = (measured["posted_in_first_minute"] <= 80 and measured["posted_twice"] == 0
            and measured["simulator_refused"] == 0 and measured["done_at_end"] == BURST
            and measured["queued_with_queued_until"] == BURST - measured[
                "posted_in_first_minute"])
    return {"method": f"{BURST} comment actions by one member through the API, vault-P, act-P "
                      "and the queue sweep against the GitHub simulator (80/min, 500/h "
                      "content creation enforced), on one fake clock advanced "
                      f"{STEP:g} s per sweep; counts from the action statuses and the "
                      "simulator; 1 run (counts are deterministic)",
            **measured, "goal_met": goal,
            "wall_seconds": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))


def rows(p: dict) -> list[tuple]:
    """The part's rows of ``benchmarks/results.md``."""
    ok = "yes" if p["goal_met"] else "**no**"
    return [(f"write pacing (GitHub): {p['actions']} comment actions at once — posted in the "
             "first minute / queued with queued_until / posted twice / refused by the "
             "simulator's secondary limit",
             f"{p['posted_in_first_minute']} / {p['queued_with_queued_until']} / "
             f"{p['posted_twice']} / {p['simulator_refused']}", "1", "<= 80 / the rest / 0 / 0",
             ok),
            ("write pacing: every action posted once, last one after (simulated) / wall",
             f"{p['distinct_actions_posted']} of {p['actions']} after "
             f"{p['last_posted_after_simulated_s']} s / {p['wall_seconds']} s", "1",
             f"{p['actions']}", "yes" if p["done_at_end"] == p["actions"] else "**no**")]
