"""Webhook acknowledgement in its deployed shape: ``webhook-github`` served exactly as Cloud
Run / Cloud Functions gen2 serve it — functions-framework's gunicorn (:mod:`keyway.fnserve`,
default settings: one worker, ``THREADS`` = 4 x cores) — on the emulator backend (the official
Firestore and Pub/Sub emulators), against the bare HMAC function under the same
functions-framework and gunicorn settings.

Method: both functions run as subprocesses on 127.0.0.1; ``events-github`` has its
subscription (as deployed, where ingest's push subscription keeps every event). The load
generator is :mod:`benchmarks.loadgen` in a process of its own (asyncio, raw sockets): 32
connections, ``DELIVERIES`` signed deliveries of ``pull_request.opened.json`` (8 KB), each with
a fresh ``X-GitHub-Delivery``. ``RUNS`` interleaved rounds (keyway, then bare); the throughput
ratio is computed per round. The generator's own CPU seconds are reported: on 2 cores it shares
the machine with the server and the emulators (the JVMs), equally for both sides. Afterwards
the acknowledgement's two emulator round trips (a create, a publish) are timed alone, one at
a time from the bench process, as the floor of one acknowledgement.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.stats import ratio, summary
from benchmarks.webhook_ingest import FIXTURE, ROOT, free_port, stop, wait_healthy
from keyway import emulators
from shared import bootstrap
from shared.config import Config
from shared.topology import subscription_specs

CLIENTS = 32
DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", 2000))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
WARM_UP = int(os.environ.get("BENCH_WARM_UP", 200))
GOAL_RATIO, GOAL_P99_MS = 0.5, 100.0


def load(url: str, env: dict[str, str], body_file: Path, deliveries: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.loadgen", url, str(CLIENTS),
                          str(deliveries), str(body_file)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextmanager
def emulator_env(env: dict[str, str]) -> Iterator[None]:
    """The emulator hosts of ``env`` in this process's environment, where the Google clients
    read them, for the block only (nothing for an embedded ``env``)."""
    names = [n for n in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST") if env.get(n)]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: env[name] for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ensure_events_subscription(env: dict[str, str]) -> None:
    """``events-github`` and its subscription on the emulator ``env`` points at."""
    with emulator_env(env):
        ports = bootstrap.build(Config.from_env(env))
        ports.bus.ensure_subscription(
            next(s for s in subscription_specs() if s.topic == "events-github"))


def round_trips(env: dict[str, str], count: int = 200) -> dict:
    """The acknowledgement's two emulator round trips alone, from this process, one at a time:
    a ``DocumentStore.create`` of a claim-sized document, then one ``events-github``
    publish of the fixture-sized message (the adapters the function uses)."""
    from benchmarks.stats import percentile

    data = FIXTURE.read_bytes()
    with emulator_env(env):
        ports = bootstrap.build(Config.from_env(env))
        creates, publishes = [], []
        for n in range(count):
            start = time.perf_counter()
            ports.business.create("webhook_deliveries", f"bench-rtt-{n}", {
                "provider": "github", "delivery": f"bench-rtt-{n}", "state": "claimed"})
            created = time.perf_counter()
            ports.bus.publish("events-github", data, {"bench": "rtt"})
            creates.append(created - start)
            publishes.append(time.perf_counter() - created)
    return {"count": count,
            "create_p50_ms": round(percentile(creates, 50) * 1000, 2),
            "publish_p50_ms": round(percentile(publishes, 50) * 1000, 2),
            "create_p99_ms": round(percentile(creates, 99) * 1000, 2),
            "publish_p99_ms": round(percentile(publishes, 99) * 1000, 2)}


def _side(rounds: list[dict]) -> dict:
    return {"deliveries_per_s": summary([r["per_second"] for r in rounds], 1),
            "p50_ms": summary([r["p50_ms"] for r in rounds], 2),
            "p99_ms": summary([r["p99_ms"] for r in rounds], 2),
            "generator_cpu_s": summary([r["generator_cpu_s"] for r in rounds], 2),
            "seconds": summary([r["seconds"] for r in rounds], 2),
            "statuses": [r["statuses"] for r in rounds],
            "errors": [r["errors"] for r in rounds]}


def run() -> dict:
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="keyway-bench-deployed-") as tmp:
        started = emulators.start(Path(tmp) / "logs")
        procs: list[subprocess.Popen] = []
        logs = []
        try:
            env = dict(os.environ, PYTHONPATH=str(ROOT), KEYWAY_BACKEND="emulator",
                       KEYWAY_PROJECT="keyway-bench", KEYWAY_STATE_DIR=str(Path(tmp) / "state"),
                       KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET=secret,
                       KEYWAY_SECRET_LOCAL_PUSH_TOKEN=secrets.token_urlsafe(32),
                       BENCH_WEBHOOK_SECRET=secret, **started.env())
            ensure_events_subscription(env)
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(FIXTURE.read_bytes())
            targets = {}
            for name, argv in (
                    ("keyway", ["-m", "keyway.fnserve", "webhook-github"]),
                    ("bare", ["-m", "benchmarks.bare_hmac_app"])):
                port = free_port()
                extra = [] if name == "keyway" else ["--functions-framework"]
                log = open(Path(tmp) / f"{name}.log", "wb")  # noqa: SIM115
                logs.append(log)
                procs.append(subprocess.Popen(
                    [sys.executable, *argv, str(port), *extra], cwd=ROOT,
                    env=env | {"K_SERVICE": "webhook-github"}, stdout=log,
                    stderr=subprocess.STDOUT))
                wait_healthy(f"http://127.0.0.1:{port}/healthz" if name == "bare"
                             else f"http://127.0.0.1:{port}/", procs[-1], any_status=True)
                targets[name] = f"http://127.0.0.1:{port}/"
            for url in targets.values():
                load(url, env, body_file, WARM_UP)
            rounds = [(load(targets["keyway"], env, body_file, DELIVERIES),
                       load(targets["bare"], env, body_file, DELIVERIES)) for _ in range(RUNS)]
            alone = round_trips(env)
        finally:
            for proc in procs:
                stop(proc)
            for log in logs:
                log.close()
            started.stop()
    keyway_side, bare_side = _side([r[0] for r in rounds]), _side([r[1] for r in rounds])
    throughput = ratio([r[0]["per_second"] for r in rounds], [r[1]["per_second"] for r in rounds])
    p99 = keyway_side["p99_ms"]["median"]
    return {"method": f"{RUNS} interleaved rounds x {DELIVERIES} signed deliveries "
                      f"({FIXTURE.stat().st_size} B pull_request.opened) at {CLIENTS} "
                      "connections; webhook-github and the bare HMAC function each under "
                      "functions-framework's gunicorn (1 worker, "
                      f"{os.environ.get('THREADS', (os.cpu_count() or 1) * 4)} threads); "
                      "emulator backend; load generator in its own process (asyncio)",
            "webhook_github": keyway_side, "bare_hmac_function": bare_side,
            "throughput_ratio_keyway_over_bare": throughput,
            "emulator_round_trips_alone": alone,
            "gunicorn_threads": int(os.environ.get("THREADS", (os.cpu_count() or 1) * 4)),
            "goal": f">= {GOAL_RATIO} x bare throughput, p99 <= {GOAL_P99_MS:g} ms",
            "goal_met": bool(throughput.get("median", 0) >= GOAL_RATIO
                             and p99 <= GOAL_P99_MS)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
