"""Webhook ingestion: signed GitHub deliveries per second and acknowledgement latency at 32
concurrent clients on loopback, against the local stack (``python -m keyway run``, embedded
backend, temporary state) and against a bare Flask endpoint that only checks the HMAC.

Method: both servers run as subprocesses bound to 127.0.0.1; the load generator is this
process (32 threads, one keep-alive ``requests`` session each, each delivery with a fresh
``X-GitHub-Delivery``). ``RUNS`` interleaved rounds, ``DELIVERIES`` each per target; the
throughput ratio is computed per round. Bounded: fixed counts, then both processes are stopped.
Note: on 2 cores the load generator competes with the server for CPU (equally for both).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from benchmarks.stats import percentile, ratio, summary

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "pull_request.opened.json"
CLIENTS = 32
DELIVERIES = 2000
RUNS = 3
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT, *,
                 any_status: bool = False) -> float:
    """Seconds until ``url`` answers 200 (any HTTP answer with ``any_status``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            status = requests.get(url, timeout=1).status_code
        except requests.RequestException:
            status = None
        if status is not None and (any_status or status == 200):
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def load(url: str, secret: bytes, body: bytes, deliveries: int = DELIVERIES,
         clients: int = CLIENTS) -> dict:
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(deliveries))

    def worker() -> None:
        session = requests.Session()
        mine, codes = [], {}
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": signature, "Content-Type": "application/json",
                       "X-GitHub-Hook-ID": "292430182"}
            start = time.perf_counter()
            try:
                response = session.post(url, data=body, headers=headers, timeout=30)
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
            except requests.RequestException as e:
                with lock:
                    errors.append(type(e).__name__)
                continue
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            for code, c in codes.items():
                statuses[code] = statuses.get(code, 0) + c

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = sum(c for code, c in statuses.items() if 200 <= code < 300)
    return {"deliveries": deliveries, "accepted": ok, "statuses": statuses,
            "errors": len(errors), "seconds": wall, "per_second": ok / wall,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def run() -> dict:
    secret = secrets.token_hex(32)
    body = FIXTURE.read_bytes()
    with tempfile.TemporaryDirectory(prefix="keyway-bench-hooks-") as tmp:
        stack_port, bare_port = free_port(), free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT), PORT=str(stack_port),
                   KEYWAY_STATE_DIR=str(Path(tmp) / "state"),
                   KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET=secret, KEYWAY_LOG_LEVEL="WARNING",
                   BENCH_WEBHOOK_SECRET=secret)
        log_stack = open(Path(tmp) / "stack.log", "wb")  # noqa: SIM115
        log_bare = open(Path(tmp) / "bare.log", "wb")  # noqa: SIM115
        stack = subprocess.Popen([sys.executable, "-m", "keyway", "run"], cwd=ROOT, env=env,
                                 stdout=log_stack, stderr=subprocess.STDOUT)
        bare = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_hmac_app",
                                 str(bare_port)], cwd=ROOT, env=env, stdout=log_bare,
                                stderr=subprocess.STDOUT)
        try:
            try:
                wait_healthy(f"http://127.0.0.1:{stack_port}/healthz", stack)
                wait_healthy(f"http://127.0.0.1:{bare_port}/healthz", bare)
            except RuntimeError as e:
                tail = (Path(tmp) / "stack.log").read_text(errors="replace")[-2000:]
                return {"error": str(e), "stack_log_tail": tail}
            stack_url = f"http://127.0.0.1:{stack_port}/webhook-github/"
            bare_url = f"http://127.0.0.1:{bare_port}/webhook-github/"
            load(stack_url, secret.encode(), body, 200)  # warm-up
            load(bare_url, secret.encode(), body, 200)
            rounds = []
            for _ in range(RUNS):
                rounds.append((load(stack_url, secret.encode(), body),
                               load(bare_url, secret.encode(), body)))
        finally:
            stop(stack)
            stop(bare)
            log_stack.close()
            log_bare.close()

    def side(i: int) -> dict:
        runs = [r[i] for r in rounds]
        return {"deliveries_per_s": summary([r["per_second"] for r in runs], 1),
                "p50_ms": summary([r["p50_ms"] for r in runs], 2),
                "p99_ms": summary([r["p99_ms"] for r in runs], 2),
                "statuses": [r["statuses"] for r in runs],
                "errors": [r["errors"] for r in runs]}

    stack_side, bare_side = side(0), side(1)
    throughput = ratio([r[0]["per_second"] for r in rounds], [r[1]["per_second"] for r in rounds])
    return {"method": f"{RUNS} interleaved rounds x {DELIVERIES} signed deliveries "
                      f"({len(body)} B pull_request.opened) at {CLIENTS} concurrent clients",
            "keyway_stack": stack_side, "bare_flask_hmac": bare_side,
            "throughput_ratio_stack_over_bare": throughput,
            "goal": ">= 0.7 x bare throughput, p99 <= 50 ms",
            "goal_met": bool(throughput.get("median", 0) >= 0.7
                             and stack_side["p99_ms"]["median"] <= 50)}


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
