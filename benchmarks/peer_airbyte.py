"""A real peer on the same simulated org: ``airbyte-source-github==2.7.1`` (installed by this
benchmark into its own virtual environment under the cache folder), full then incremental with
its saved state, at ``page_size_for_large_streams: 100`` and at its default page size (10 for
large streams); keyway's SyncRun on the same streams beside it.

Streams: pull_requests, issues, comments, review_comments, reviews, issue_labels. Both read
reviews through ``POST /graphql`` (answered by :mod:`keyway.simulators.github_graphql`, which
meters GraphQL points apart from REST requests, as GitHub does); keyway batches 100 pull
requests a query by node id, the peer pages pull requests with their reviews per repository.
The peer is pointed at ``api_url = <sim>/api/v3/`` (the simulator's GHES layout works as is;
its ``GET /rate_limit`` gets a 404, which the peer tolerates).

Runs: keyway full, peer (page size 100) full, keyway incremental, peer (page size 100)
incremental — repeated RUNS times, interleaved in that order in one invocation, each keyway
repetition from an empty store; min / median / max per figure, and ratios from the pairs
measured back to back. The default-page-size peer runs once afterwards: it is bound by the
peer's own 900 requests/minute throttle (minutes per run), not by the provider.

Counts come from the simulator's request log (REST points: REST answers that are not 304s;
GraphQL points: the simulator's GraphQL meter); wall time is the peer process's (including
its ~1-2 s Python start) vs keyway's SyncRun in-process. ``goal_reachability`` compares the
fewest requests any client reading these lists can make (each list once at 100 per page, plus
ceil(pull requests / 100) review queries) with half the peer's requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from benchmarks.stats import ratio, summary
from benchmarks.sync_efficiency import github_minimum, is_graphql
from keyway.simulators import GitHubSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry

PEER = "airbyte-source-github==2.7.1"
CACHE = Path(os.environ.get("KEYWAY_BENCH_CACHE", Path(tempfile.gettempdir()) /
                            "keyway-bench-cache"))
VENV = CACHE / "airbyte-source-github-2.7.1"
STREAMS = ("pull_requests", "issues", "comments", "review_comments", "reviews", "issue_labels")
INCREMENTAL = {"pull_requests", "issues", "comments", "review_comments", "reviews"}
SCALE = {"repos": 5, "prs": 2000, "issues": 3000, "comments": 20000, "labels": 20}
PEER_TIMEOUT = 420.0
RUNS = 3
FIGURES = ("requests", "graphql", "rest_points", "graphql_points", "points", "seconds")


def install() -> dict:
    exe = VENV / "bin" / "source-github"
    if exe.exists():
        return {"installed": "cached", "seconds": 0.0, "path": str(VENV)}
    start = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    proc = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", PEER],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not exe.exists():
        raise RuntimeError(f"pip install {PEER} failed: {proc.stderr[-1500:]}")
    return {"installed": "now", "seconds": round(time.perf_counter() - start, 1),
            "path": str(VENV)}


def _peer_read(tmp: Path, config: dict, state: list | None, label: str) -> dict:
    cfg, cat = tmp / f"{label}-config.json", tmp / f"{label}-catalog.json"
    cfg.write_text(json.dumps(config))
    cat.write_text(json.dumps({"streams": [
        {"stream": {"name": s, "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"]},
         "sync_mode": "incremental" if s in INCREMENTAL else "full_refresh",
         "destination_sync_mode": "append"} for s in STREAMS]}))
    argv = [str(VENV / "bin" / "source-github"), "read", "--config", str(cfg),
            "--catalog", str(cat)]
    if state is not None:
        st = tmp / f"{label}-state.json"
        st.write_text(json.dumps(state))
        argv += ["--state", str(st)]
    records: Counter = Counter()
    states: dict[str, dict] = {}
    errors: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, DEPLOYMENT_MODE="OSS"))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if time.perf_counter() - start > PEER_TIMEOUT:
                proc.kill()
                errors.append(f"killed after {PEER_TIMEOUT}s")
                break
            if line.startswith('{"type":"RECORD"') or line.startswith('{"type": "RECORD"'):
                records[json.loads(line)["record"]["stream"]] += 1
            elif '"STATE"' in line[:20]:
                msg = json.loads(line)["state"]
                if msg.get("type") == "STREAM":
                    states[msg["stream"]["stream_descriptor"]["name"]] = msg
            elif '"level":"ERROR"' in line.replace(" ", "") or '"failure_type"' in line:
                errors.append(line[:300])
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return {"seconds": time.perf_counter() - start, "returncode": proc.returncode,
            "records": dict(records), "errors": errors[:5], "state": list(states.values())}


def _keyway(sim, ports, token: str) -> dict:
    client = ProviderClient(registry.get("github"), sim.api_url, token, requests.Session(),
                            ports.clock, TokenBudget(ports.business, ports.clock,
                                                     budget_key("github", "conn-1")),
                            timeout=30.0, purpose="fetch")
    start = time.perf_counter()
    result = SyncRun(ports, client, GITHUB_PLAN, "t-1", "conn-1", 3600.0).run()
    return {"seconds": time.perf_counter() - start, "finished": result.finished,
            "written": result.stats.written}


def _counted(sim, fn) -> dict:
    before, before_points = len(sim.requests_log), sim.graphql_points_used(sim.account.id)
    out = fn()
    log = sim.requests_log[before:]
    gql = [r for r in log if is_graphql(r)]
    rest_points = sum(1 for r in log if r.status < 300 and not is_graphql(r))
    graphql_points = sim.graphql_points_used(sim.account.id) - before_points
    out.update(requests=len(log), rest_points=rest_points, graphql=len(gql),
               graphql_points=graphql_points, points=rest_points + graphql_points,
               not_modified=sum(1 for r in log if r.status == 304),
               by_status=dict(Counter(r.status for r in log)))
    if out["seconds"] > 0 and len(log) > 1:
        span = log[-1].time - log[0].time
        out["requests_per_minute"] = round(len(log) / span * 60, 1) if span > 0 else None
    out["seconds"] = round(out["seconds"], 2)
    return out


def _peer_pair(sim, tmp: Path, config: dict, label: str) -> tuple[dict, dict]:
    """The peer's full read, then its incremental read from the state the full one saved."""
    full = _counted(sim, lambda: _peer_read(tmp, config, None, label))
    state = full.pop("state")
    incremental = _counted(sim, lambda: _peer_read(tmp, config, state, label + "-incr"))
    incremental.pop("state")
    return full, incremental


def _interleaved(sim, tmp: Path, base: dict, token: str) -> dict[str, list[dict]]:
    """RUNS repetitions of keyway full, peer full, keyway incremental, peer incremental."""
    runs: dict[str, list[dict]] = {k: [] for k in ("keyway_full", "peer_page100_full",
                                                   "keyway_incremental",
                                                   "peer_page100_incremental")}
    config = {**base, "page_size_for_large_streams": 100}
    for i in range(RUNS):
        ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp / f"state-{i}")}))
        runs["keyway_full"].append(_counted(sim, lambda p=ports: _keyway(sim, p, token)))
        full = _counted(sim, lambda lb=f"peer100-{i}": _peer_read(tmp, config, None, lb))
        state = full.pop("state")
        runs["peer_page100_full"].append(full)
        runs["keyway_incremental"].append(_counted(sim, lambda p=ports: _keyway(sim, p, token)))
        incremental = _counted(sim, lambda s=state, lb=f"peer100-{i}-incr": _peer_read(
            tmp, config, s, lb))
        incremental.pop("state")
        runs["peer_page100_incremental"].append(incremental)
    return runs


def _summaries(runs: dict[str, list[dict]]) -> dict[str, dict]:
    return {label: {figure: summary([r[figure] for r in measured], 3) for figure in FIGURES}
            for label, measured in runs.items()}


def _ratios(runs: dict[str, list[dict]]) -> dict[str, dict]:
    def pair(mode: str, figure: str) -> dict:
        return ratio([r[figure] for r in runs[f"keyway_{mode}"]],
                     [r[figure] for r in runs[f"peer_page100_{mode}"]])
    return {f"{mode}_{figure}": pair(mode, figure)
            for mode in ("full", "incremental")
            for figure in ("requests", "points", "seconds")}


def _reachability(sim, peer_requests: float) -> dict:
    least = github_minimum(sim)
    lists, reviews = sum(least["lists"].values()), sum(least["children"].values())
    return {"keyway_minimum_requests": lists + reviews, "of_which_list_pages": lists,
            "of_which_review_queries": reviews, "peer_requests_median": peer_requests,
            "half_of_peer": peer_requests / 2,
            "requests_goal_reachable": lists + reviews <= peer_requests / 2}


def run() -> dict:
    try:
        installed = install()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        return {"error": f"peer not installed: {e}"}
    sim = GitHubSimulator(rate_limit=10_000_000, graphql_rate_limit=10_000_000).start()
    try:
        repos = sim.seed_activity("acme", **SCALE)
        token = sim.mint_token(scopes=("repo",)).access_token
        base = {"credentials": {"option_title": "PAT Credentials",
                                "personal_access_token": token},
                "repositories": [r["full_name"] for r in repos], "api_url": sim.api_url + "/",
                "start_date": "2000-01-01T00:00:00Z"}
        out: dict = {"install": installed, "streams": list(STREAMS), "scale": SCALE,
                     "runs_interleaved": RUNS}
        with tempfile.TemporaryDirectory(prefix="keyway-bench-peer-") as tmp_name:
            tmp = Path(tmp_name)
            out["runs"] = _interleaved(sim, tmp, base, token)
            full, incremental = _peer_pair(sim, tmp, base, "peer_default")
            out["runs"]["peer_default_full"] = [full]
            out["runs"]["peer_default_incremental"] = [incremental]
        out["summary"] = _summaries(out["runs"])
        peer_requests = out["summary"]["peer_page100_full"]["requests"]["median"]
        out["goal_reachability"] = _reachability(sim, peer_requests)
    finally:
        sim.stop()
    out["ratios_keyway_over_peer"] = _ratios(out["runs"])
    out["goal"] = "keyway <= 0.5 x peer requests and <= 0.5 x peer wall time (full sync)"
    r = out["ratios_keyway_over_peer"]
    out["goal_met"] = bool(r["full_requests"].get("median", 99) <= 0.5
                           and r["full_seconds"].get("median", 99) <= 0.5)
    out["method"] = (__doc__ or "").split("\n\n", 1)[1].strip()
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
