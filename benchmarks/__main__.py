"""Run every benchmark (issue 9) and write ``benchmarks/results.json`` and
``benchmarks/results.md``. ``python -m benchmarks [name ...]`` runs only the named ones
(``sync``, ``peer``, …) and merges them into the existing results: the other parts keep their
figures and their own ``measured_at_by_part`` time, and the report says which part was
measured when. ``sync:gitlab`` (``sync:github``) measures one provider of the ``sync`` part and
merges it into that part's results (stamped ``sync:gitlab``)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    cold_start,
    crypto_overhead,
    embedded_backend,
    freshness,
    peer_airbyte,
    report,
    sync_efficiency,
    vault_crypto,
    webhook_deployed,
    webhook_ingest,
    write_pacing,
)

HERE = Path(__file__).resolve().parent
BENCHES = {
    "crypto": crypto_overhead.run,
    "sync": sync_efficiency.run,
    "webhooks": webhook_ingest.run,
    "webhooks_deployed": webhook_deployed.run,
    "freshness": freshness.run,
    "cold_start": cold_start.run,
    "peer": peer_airbyte.run,
    "vault_crypto": vault_crypto.run,
    "embedded_backend": embedded_backend.run,
    "write_pacing": write_pacing.run,
    "store_writes": lambda: __import__("benchmarks.store_writes").store_writes.run(),
    "convergence": lambda: __import__("benchmarks.convergence").convergence.run(),
}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def _previous(wanted: list[str]) -> dict:
    """The results a partial run merges into (nothing for a full run or a first run)."""
    path = HERE / "results.json"
    if set(wanted) >= set(BENCHES) or not path.exists():
        return {}
    previous = json.loads(path.read_text())
    stamps = previous.setdefault("measured_at_by_part", {})
    for name in previous.get("benchmarks", {}):
        stamps.setdefault(name, previous.get("measured_at"))
    return previous


SUBPARTS = {"sync:github": ("sync", lambda: sync_efficiency.run(("github",))),
            "sync:gitlab": ("sync", lambda: sync_efficiency.run(("gitlab",))),
            "sync:bitbucket": ("sync", lambda: sync_efficiency.run(("bitbucket",))),
            "sync:jira": ("sync", lambda: sync_efficiency.run(("jira",)))}


def main(argv: list[str]) -> int:
    wanted = argv or list(BENCHES)
    unknown = [name for name in wanted if name not in BENCHES and name not in SUBPARTS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHES)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict = {"measured_at": now, "machine": machine(), "benchmarks": {},
                     "seconds": {}, "measured_at_by_part": {}, "load_by_part": {}}
    previous = _previous(wanted)
    for key in ("benchmarks", "seconds", "measured_at_by_part", "load_by_part"):
        results[key].update(previous.get(key, {}))
    for name in wanted:
        t = time.perf_counter()
        results["load_by_part"][name] = round(os.getloadavg()[0], 2)  # other work's share
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        part, bench = SUBPARTS.get(name, (name, BENCHES.get(name)))
        try:
            measured = bench()
        except Exception as e:  # noqa: BLE001 - a failed benchmark is reported, others run
            measured = {"error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc()[-2000:]}
        if part != name and "error" not in measured:  # one provider merged into its part
            measured = {**results["benchmarks"].get(part, {}), **measured}
        results["benchmarks"][part] = measured
        results["seconds"][name] = round(time.perf_counter() - t, 1)
        results["measured_at_by_part"][name] = now
        print(f"[bench] {name} done in {results['seconds'][name]} s", file=sys.stderr,
              flush=True)
    results["total_seconds"] = (previous.get("total_seconds") if previous
                                else round(time.perf_counter() - started, 1))
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(report.markdown(results))
    print(f"wrote {HERE / 'results.json'} and {HERE / 'results.md'} "
          f"({round(time.perf_counter() - started, 1)} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
