"""A real peer on the same simulated org: ``airbyte-source-github==2.7.1`` (installed by this
benchmark into its own virtual environment under the cache folder), full then incremental with
its saved state, at its default page size (10 for large streams) and at
``page_size_for_large_streams: 100``; keyway's SyncRun on the same streams beside it.

Streams: pull_requests, issues, comments, review_comments, reviews, issue_labels. The peer
reads reviews through ``POST /graphql`` (answered by :mod:`keyway.simulators.github_graphql`,
which meters no points: GraphQL has its own budget on GitHub — its requests are counted
separately); keyway reads them per pull request over REST. The peer is pointed at
``api_url = <sim>/api/v3/`` (the simulator's GHES layout works as is; its
``GET /rate_limit`` gets a 404, which the peer tolerates).

Counts come from the simulator's request log (points: answers that are not 304); wall time is
the peer process's (including its ~1-2 s Python start) vs keyway's SyncRun in-process.
One run each (the default-page-size full run alone takes minutes at the peer's 900 req/min).
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
                            timeout=30.0)
    start = time.perf_counter()
    result = SyncRun(ports, client, GITHUB_PLAN, "t-1", "conn-1", 3600.0).run()
    return {"seconds": time.perf_counter() - start, "finished": result.finished,
            "written": result.stats.written}


def _counted(sim, fn) -> dict:
    before = len(sim.requests_log)
    out = fn()
    log = sim.requests_log[before:]
    gql = [r for r in log if r.method == "POST" and r.path.endswith("graphql")]
    out.update(requests=len(log),
               rest_points=sum(1 for r in log if r.status < 300) - len(gql),
               points=sum(1 for r in log if r.status < 300),
               not_modified=sum(1 for r in log if r.status == 304),
               graphql=len(gql),
               by_status=dict(Counter(r.status for r in log)))
    if out["seconds"] > 0 and len(log) > 1:
        span = log[-1].time - log[0].time
        out["requests_per_minute"] = round(len(log) / span * 60, 1) if span > 0 else None
    out["seconds"] = round(out["seconds"], 2)
    return out


def run() -> dict:
    try:
        installed = install()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        return {"error": f"peer not installed: {e}"}
    sim = GitHubSimulator(rate_limit=10_000_000).start()
    try:
        repos = sim.seed_activity("acme", **SCALE)
        token = sim.mint_token(scopes=("repo",)).access_token
        names = [r["full_name"] for r in repos]
        base = {"credentials": {"option_title": "PAT Credentials",
                                "personal_access_token": token},
                "repositories": names, "api_url": sim.api_url + "/",
                "start_date": "2000-01-01T00:00:00Z"}
        out: dict = {"install": installed, "streams": list(STREAMS), "scale": SCALE}
        with tempfile.TemporaryDirectory(prefix="keyway-bench-peer-") as tmp_name:
            tmp = Path(tmp_name)
            ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp / "state")}))
            out["keyway_full"] = _counted(sim, lambda: _keyway(sim, ports, token))
            for label, extra in (("peer_page100", {"page_size_for_large_streams": 100}),
                                 ("peer_default", {})):
                config = {**base, **extra}
                full = _counted(sim, lambda c=config, lb=label: _peer_read(tmp, c, None, lb))
                state = full.pop("state")
                incr = _counted(sim, lambda c=config, lb=label, s=state: _peer_read(
                    tmp, c, s, lb + "-incr"))
                incr.pop("state")
                out[label + "_full"], out[label + "_incremental"] = full, incr
            out["keyway_incremental"] = _counted(sim, lambda: _keyway(sim, ports, token))
    finally:
        sim.stop()
    better = min(("peer_page100", "peer_default"),
                 key=lambda lb: out[lb + "_full"]["requests"])
    out["better_peer"] = better
    kf, pf = out["keyway_full"], out[better + "_full"]
    ki, pi = out["keyway_incremental"], out[better + "_incremental"]
    out["ratios_keyway_over_peer"] = {
        "full_requests": round(kf["requests"] / pf["requests"], 3) if pf["requests"] else None,
        "full_points": round(kf["points"] / pf["points"], 3) if pf["points"] else None,
        "full_wall": round(kf["seconds"] / pf["seconds"], 3) if pf["seconds"] else None,
        "incremental_requests": round(ki["requests"] / pi["requests"], 3)
        if pi["requests"] else None,
        "incremental_points": round(ki["points"] / pi["points"], 3) if pi["points"] else None,
        "incremental_wall": round(ki["seconds"] / pi["seconds"], 3) if pi["seconds"] else None,
    }
    out["goal"] = "keyway <= 0.5 x peer requests and <= 0.5 x peer wall time (full sync)"
    r = out["ratios_keyway_over_peer"]
    out["goal_met"] = bool(r["full_requests"] is not None and r["full_requests"] <= 0.5
                           and r["full_wall"] is not None and r["full_wall"] <= 0.5)
    out["method"] = (__doc__ or "").split("\n\n", 1)[1].strip()
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
