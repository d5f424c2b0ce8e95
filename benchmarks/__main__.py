"""Run every benchmark (issue 9) and write ``benchmarks/results.json`` and
``benchmarks/results.md``. ``python -m benchmarks [name ...]`` runs only the named ones."""

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
    peer_airbyte,
    report,
    sync_efficiency,
    vault_crypto,
    webhook_ingest,
)

HERE = Path(__file__).resolve().parent
BENCHES = {
    "crypto": crypto_overhead.run,
    "sync": sync_efficiency.run,
    "webhooks": webhook_ingest.run,
    "cold_start": cold_start.run,
    "peer": peer_airbyte.run,
    "vault_crypto": vault_crypto.run,
    "embedded_backend": embedded_backend.run,
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


def main(argv: list[str]) -> int:
    wanted = argv or list(BENCHES)
    started = time.perf_counter()
    results: dict = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "machine": machine(), "benchmarks": {}, "seconds": {}}
    for name in wanted:
        t = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            results["benchmarks"][name] = BENCHES[name]()
        except Exception as e:  # noqa: BLE001 - a failed benchmark is reported, others run
            results["benchmarks"][name] = {"error": f"{type(e).__name__}: {e}",
                                           "traceback": traceback.format_exc()[-2000:]}
        results["seconds"][name] = round(time.perf_counter() - t, 1)
        print(f"[bench] {name} done in {results['seconds'][name]} s", file=sys.stderr,
              flush=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(report.markdown(results))
    print(f"wrote {HERE / 'results.json'} and {HERE / 'results.md'} "
          f"({results['total_seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
