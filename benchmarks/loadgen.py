"""A light HTTP/1.1 load generator for the webhook benchmarks, run in a process of its own so
the figures are not bounded by a heavy client sharing the server's cores.

    python -m benchmarks.loadgen URL CLIENTS DELIVERIES BODY_FILE   (secret in BENCH_WEBHOOK_SECRET)

``CLIENTS`` asyncio connections (keep-alive, raw sockets, no HTTP library) POST signed GitHub
deliveries (``X-Hub-Signature-256`` over ``BODY_FILE``, a fresh ``X-GitHub-Delivery`` each)
until ``DELIVERIES`` were sent; prints one JSON line: statuses, wall time, deliveries/s and
latency percentiles, plus the generator's own CPU seconds (to tell whether it bounds the
figure). A connection the server closes is reopened.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import resource
import sys
import time
import uuid
from urllib.parse import urlsplit


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def run(url: str, clients: int, deliveries: int, body: bytes, secret: bytes,
              event: str = "pull_request") -> dict:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: {event}\r\nX-Hub-Signature-256: {signature}\r\n"
            f"X-GitHub-Hook-ID: 292430182\r\nContent-Length: {len(body)}\r\n")
    remaining = [deliveries]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []

    async def client() -> None:
        reader = writer = None
        while remaining[0] > 0:
            remaining[0] -= 1
            request = (head + f"X-GitHub-Delivery: {uuid.uuid4()}\r\n\r\n").encode() + body
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                start = time.perf_counter()
                writer.write(request)
                status, close = await _read_response(reader)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if close:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                errors.append(type(e).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    cpu, start = _cpu(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    latencies.sort()
    ok = sum(c for code, c in statuses.items() if 200 <= code < 300)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] \
            * 1000 if latencies else float("nan")

    return {"deliveries": deliveries, "accepted": ok, "statuses": statuses,
            "errors": len(errors), "seconds": wall, "per_second": ok / wall,
            "p50_ms": pct(50), "p99_ms": pct(99), "generator_cpu_s": _cpu() - cpu}


def main(argv: list[str]) -> int:
    url, clients, deliveries, body_file = argv[0], int(argv[1]), int(argv[2]), argv[3]
    with open(body_file, "rb") as f:
        body = f.read()
    secret = os.environ["BENCH_WEBHOOK_SECRET"].encode()
    print(json.dumps(asyncio.run(run(url, clients, deliveries, body, secret))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
