"""Webhook → API freshness: from sending a signed GitHub ``issue_comment`` until the comment is
visible through the data API (``GET /api/v1/comments/<id>`` answers 200).

Topologies:

* ``embedded`` — ``python -m keyway run`` (one process: every function mounted, the pump
  pushing bus messages to ingest, woken by each publish);
* ``emulator`` — the production topology on the official emulators: ``webhook-github``,
  ``ingest`` and ``api`` each in its own functions-framework process (:mod:`keyway.fnserve`),
  ``events-github`` pushed by the Pub/Sub emulator to ingest's endpoint, Firestore emulator
  for records.

Method: a connection (installation 957387) and the fixture's repository are seeded; each
delivery is ``issue_comment.created.json`` with its own comment id. ``SERIAL`` deliveries one
at a time (the next sent once the previous is visible), polling the API every
``POLL_S``; then, on the emulator topology, ``BURST`` deliveries from ``BURST_CLIENTS``
threads, each polling for its own comment every ``BURST_POLL_S`` (so the latency carries up
to that much polling slack). The bench process is the client of both. For scale, the Pub/Sub
emulator's own publish → push latency is measured alone (a bare endpoint, one at a time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import requests

from benchmarks.stats import percentile
from benchmarks.webhook_deployed import emulator_env
from benchmarks.webhook_ingest import ROOT, free_port, stop, wait_healthy
from keyway import emulators
from shared import bootstrap, policy
from shared.api.authn import local_issuer
from shared.config import Config
from shared.records import github as gh_records
from shared.records.model import Context, record_id

FIXTURE = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "issue_comment.created.json"
SERIAL = int(os.environ.get("BENCH_FRESH_SERIAL", 100))
BURST = int(os.environ.get("BENCH_FRESH_BURST", 500))
BURST_CLIENTS = 16
POLL_S, BURST_POLL_S = 0.005, 0.01
TIMEOUT_S = 60.0
TENANT, CONNECTION, INSTALLATION = "acme", "conn-fresh", 957387
GOAL_SERIAL_P99_MS, GOAL_BURST_P99_MS = 150.0, 1000.0


def _seed(env: dict[str, str]) -> str:
    """Connection and repository records; returns a bearer token for the data API."""
    with emulator_env(env):
        config = Config.from_env(env)
        ports = bootstrap.build(config)
        ports.business.put("connections", CONNECTION, {
            "tenant": TENANT, "provider": "github", "kind": "app", "status": "active",
            "installation_id": INSTALLATION})
        ctx = Context(TENANT, "github", CONNECTION, observed_at="2019-01-01T00:00:00.000000Z")
        record = gh_records.repository(json.loads(FIXTURE.read_bytes())["repository"], ctx)
        ports.business.put("repositories", record["id"], record)
        return local_issuer(config, ports.clock).issue(TENANT, "bench", "admin")


class Client:
    def __init__(self, webhook_url: str, api_url: str, secret: str, token: str) -> None:
        self.webhook_url, self.api_url = webhook_url, api_url
        self.secret, self.token = secret.encode(), token
        self.template = json.loads(FIXTURE.read_bytes())

    def deliver(self, session: requests.Session, n: int, poll: float) -> tuple[float, float]:
        """Seconds from sending delivery ``n`` until it was acknowledged and until its comment
        is visible."""
        payload = json.loads(json.dumps(self.template))
        comment_id = 900_000_000 + n
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload["comment"].update(id=comment_id, body=f"freshness {n}", updated_at=now,
                                  created_at=now)
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": f"fresh-{n}",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(self.secret, body,
                                                               hashlib.sha256).hexdigest(),
                   "X-GitHub-Hook-ID": "292430182", "Content-Type": "application/json"}
        url = f"{self.api_url}/comments/" + quote(
            record_id(TENANT, "github", "comments", str(comment_id)), safe="")
        auth = {"Authorization": f"Bearer {self.token}"}
        start = time.perf_counter()
        answer = session.post(self.webhook_url, data=body, headers=headers, timeout=30)
        acked = time.perf_counter() - start
        if answer.status_code != 202:
            raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:200]}")
        while time.perf_counter() - start < TIMEOUT_S:
            if session.get(url, headers=auth, timeout=30).status_code == 200:
                return acked, time.perf_counter() - start
            time.sleep(poll)
        raise RuntimeError(f"comment {comment_id} not visible after {TIMEOUT_S}s")


def _figures(measured: list[tuple[float, float]]) -> dict:
    acks, seconds = [m[0] for m in measured], [m[1] for m in measured]
    return {"count": len(seconds), "p50_ms": round(percentile(seconds, 50) * 1000, 1),
            "p99_ms": round(percentile(seconds, 99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1),
            "ack_p50_ms": round(percentile(acks, 50) * 1000, 1),
            "ack_p99_ms": round(percentile(acks, 99) * 1000, 1)}


def serial(client: Client, first: int) -> dict:
    session = requests.Session()
    client.deliver(session, first, POLL_S)  # warm-up, not counted
    return _figures([client.deliver(session, first + 1 + i, POLL_S) for i in range(SERIAL)])


def burst(client: Client, first: int) -> dict:
    numbers = iter(range(first, first + BURST))
    lock = threading.Lock()
    seconds: list[tuple[float, float]] = []
    errors: list[str] = []

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            try:
                took = client.deliver(session, n, BURST_POLL_S)
            except (RuntimeError, requests.RequestException) as e:
                with lock:
                    errors.append(str(e)[:200])
                continue
            with lock:
                seconds.append(took)

    threads = [threading.Thread(target=worker) for _ in range(BURST_CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**_figures(seconds), "clients": BURST_CLIENTS, "errors": errors[:5],
            "wall_s": round(time.perf_counter() - start, 2)}


def push_floor(project: str, count: int = 50) -> dict:
    """The Pub/Sub emulator's own publish → push latency: ``count`` messages, one at a time,
    to a push subscription whose endpoint is a bare HTTP server in this process (call inside
    :func:`emulator_env`)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.publisher import client as publisher_client

    arrived: dict[str, float] = {}
    signal = threading.Condition()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with signal:
                arrived[body["message"]["attributes"]["n"]] = time.perf_counter()
                signal.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    rpc = super(publisher_client.Client, publisher)  # one Publish RPC, no batching
    topic = publisher.topic_path(project, "bench-push-floor")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={
        "name": subscriber.subscription_path(project, "bench-push-floor"), "topic": topic,
        "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_port}/"}})
    seconds = []
    try:
        for n in range(count):
            start = time.perf_counter()
            rpc.publish(topic=topic, messages=[pubsub_v1.types.PubsubMessage(
                data=b"{}", attributes={"n": str(n)})])
            with signal:
                signal.wait_for(lambda n=n: str(n) in arrived, TIMEOUT_S)
            seconds.append(arrived.get(str(n), start + TIMEOUT_S) - start)
    finally:
        server.shutdown()
    return {"count": count, "p50_ms": round(percentile(seconds, 50) * 1000, 1),
            "p99_ms": round(percentile(seconds, 99) * 1000, 1)}


def _embedded(tmp: Path, secret: str) -> dict:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PORT=str(port), KEYWAY_BACKEND="embedded",
               KEYWAY_STATE_DIR=str(tmp / "embedded"), KEYWAY_LOG_LEVEL="WARNING",
               KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET=secret)
    with open(tmp / "embedded.log", "wb") as log:
        stack = subprocess.Popen([sys.executable, "-m", "keyway", "run"], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", stack)
            base = f"http://127.0.0.1:{port}"
            client = Client(f"{base}/webhook-github/", f"{base}/api/v1", secret, _seed(env))
            return {"one_at_a_time": serial(client, 0)}
        finally:
            stop(stack)


def _emulator(tmp: Path, secret: str) -> dict:
    started = emulators.start(tmp / "logs")
    procs: list[subprocess.Popen] = []
    try:
        push_token = secrets.token_urlsafe(32)
        env = dict(os.environ, PYTHONPATH=str(ROOT), KEYWAY_BACKEND="emulator",
                   KEYWAY_PROJECT="keyway-fresh", KEYWAY_STATE_DIR=str(tmp / "emulator"),
                   KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET=secret,
                   KEYWAY_SECRET_LOCAL_PUSH_TOKEN=push_token, **started.env())
        urls = {}
        for name in ("webhook-github", "ingest", "api"):
            port = free_port()
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "keyway.fnserve", name, str(port)], cwd=ROOT,
                env=env | {"K_SERVICE": name}, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            wait_healthy(f"http://127.0.0.1:{port}/", procs[-1], any_status=True)
            urls[name] = f"http://127.0.0.1:{port}"
        with emulator_env(env):
            from shared.topology import subscription_specs
            spec = next(s for s in subscription_specs(
                lambda component, topic: f"{urls['ingest']}/projects/keyway-fresh/topics/"
                                         f"{topic}?token={push_token}")
                if s.topic == "events-github")
            assert spec.name == policy.subscription_name("events-github")
            bootstrap.build(Config.from_env(env)).bus.ensure_subscription(spec)
            floor = push_floor("keyway-fresh")
        client = Client(f"{urls['webhook-github']}/", f"{urls['api']}/v1", secret, _seed(env))
        return {"one_at_a_time": serial(client, 0), "burst": burst(client, 100_000),
                "pubsub_emulator_push_alone": floor}
    finally:
        for proc in procs:
            stop(proc)
        started.stop()


def run() -> dict:
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="keyway-bench-fresh-") as tmp:
        embedded = _embedded(Path(tmp), secret)
        emulator = _emulator(Path(tmp), secret)
    goals = {"embedded_one_at_a_time_p99_ms": embedded["one_at_a_time"]["p99_ms"]
             <= GOAL_SERIAL_P99_MS,
             "emulator_one_at_a_time_p99_ms": emulator["one_at_a_time"]["p99_ms"]
             <= GOAL_SERIAL_P99_MS,
             "emulator_burst_p99_ms": emulator["burst"]["p99_ms"] <= GOAL_BURST_P99_MS}
    return {"method": f"{SERIAL} deliveries one at a time per topology (polling every "
                      f"{POLL_S * 1000:g} ms), then {BURST} from {BURST_CLIENTS} clients on "
                      f"the emulator topology (polling every {BURST_POLL_S * 1000:g} ms); "
                      "latency = signed issue_comment POST until GET /api/v1/comments/<id> "
                      "answers 200",
            "embedded": embedded, "emulator": emulator,
            "goal": f"one at a time p99 <= {GOAL_SERIAL_P99_MS:g} ms on both; "
                    f"{BURST_CLIENTS}-client burst p99 <= {GOAL_BURST_P99_MS:g} ms (emulator)",
            "goals_met": goals, "goal_met": all(goals.values())}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
