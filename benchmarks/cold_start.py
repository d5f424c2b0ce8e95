"""Cold start: import cost of each function's module against functions-framework plus only
the google-cloud clients that function needs, and process start → first answered request.

Import method: ``python -X importtime -c "import main"`` (cwd ``functions/<name>``,
``PYTHONPATH`` the repo root, embedded backend, temporary state) against
``python -X importtime -c "import functions_framework, <needed google.cloud clients>"``;
the figure is the sum of the top-level cumulative import times (µs → ms), plus the wall time of
the whole process. ``RUNS`` interleaved pairs per function; ratio per pair. The google.cloud
modules the function's import actually loaded are listed, so a client it never uses shows.

First request: ``python -m functions_framework --target serve --source functions/<name>/main.py``
on a free loopback port; time from ``Popen`` to the first HTTP answer (any status) to
``GET /`` (webhook-github) or ``GET /healthz`` (api).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.stats import ratio, summary
from benchmarks.webhook_ingest import free_port, stop
from shared.components import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
FIRST_REQUEST_RUNS = 5
FIRESTORE, PUBSUB, SECRETS, KMS = ("google.cloud.firestore", "google.cloud.pubsub_v1",
                                   "google.cloud.secretmanager", "google.cloud.kms")


def needed_clients(name: str) -> tuple[str, ...]:
    """The google-cloud clients a function truly needs in production (by its role): every
    function reads/writes Firestore and publishes; secrets where it verifies or unseals;
    KMS only in the token component (vault-P and oauth-P, which stores the token through the
    vault in-process), which wraps data keys."""
    role = name.split("-", 1)[0]
    return {
        "vault": (FIRESTORE, PUBSUB, SECRETS, KMS),
        "webhook": (FIRESTORE, PUBSUB, SECRETS),
        "oauth": (FIRESTORE, PUBSUB, SECRETS, KMS),
        "fetch": (FIRESTORE, PUBSUB, SECRETS),
        "act": (FIRESTORE, PUBSUB, SECRETS),
        "api": (FIRESTORE, PUBSUB, SECRETS),
    }.get(role, (FIRESTORE, PUBSUB))


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def _importtime(code: str, cwd: Path, env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-1500:])
    total, google = 0, set()
    for line in proc.stderr.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        if not m.group(3):  # top level: its cumulative time includes its children
            total += int(m.group(2))
        mod = m.group(4)
        if mod.startswith("google.cloud.") and mod.count(".") == 2:
            google.add(mod)
    return {"import_ms": total / 1000, "wall_s": wall, "google_cloud": sorted(google)}


def imports(env: dict) -> dict:
    out = {}
    for name in sorted(COMPONENTS):
        cwd = ROOT / "functions" / name
        clients = needed_clients(name)
        baseline_code = "import functions_framework, " + ", ".join(clients)
        fn, base = [], []
        for _ in range(RUNS):
            fn.append(_importtime("import main", cwd, env))
            base.append(_importtime(baseline_code, ROOT, env))
        loaded = fn[-1]["google_cloud"]
        out[name] = {
            "function_import_ms": summary([r["import_ms"] for r in fn], 1),
            "baseline_import_ms": summary([r["import_ms"] for r in base], 1),
            "ratio": ratio([r["import_ms"] for r in fn], [r["import_ms"] for r in base]),
            "function_process_wall_s": summary([r["wall_s"] for r in fn], 3),
            "baseline_process_wall_s": summary([r["wall_s"] for r in base], 3),
            "needed_clients": list(clients),
            "google_cloud_loaded_by_import": loaded,
            "loads_unneeded_client": sorted(set(loaded) - {c for c in clients}
                                            - {"google.cloud.firestore_v1",
                                               "google.cloud.secretmanager_v1",
                                               "google.cloud.kms_v1",
                                               # functions-framework's own CloudEvent types
                                               "google.cloud.functions",
                                               "google.cloud.functions_v1"}),
        }
    return out


# What a deployed function loads by the end of its first request on KEYWAY_BACKEND=gcp:
# shared.bootstrap.build() imports the Firestore and Pub/Sub adapters for every function; Cloud
# KMS and Secret Manager are Lazy ports, imported on first use, i.e. only by a function whose
# work touches them (its needed clients).
EAGER_ADAPTERS = ("shared.adapters.gcp.firestore_store", "shared.adapters.gcp.pubsub_bus")
LAZY_ADAPTERS = {KMS: "shared.adapters.gcp.cloud_kms",
                 SECRETS: "shared.adapters.gcp.secret_manager"}
GCP_FUNCTIONS = ("webhook-github", "api", "ingest", "fetch-github", "vault-github")


def gcp_first_request_imports(env: dict) -> dict:
    """``import main`` plus the GCP adapters its first request imports (build()'s eager ones
    and the lazy ones its work uses), against functions-framework + the clients it needs."""
    out = {}
    for name in GCP_FUNCTIONS:
        cwd = ROOT / "functions" / name
        clients = needed_clients(name)
        adapters = EAGER_ADAPTERS + tuple(LAZY_ADAPTERS[c] for c in clients if c in LAZY_ADAPTERS)
        code = "import main, " + ", ".join(adapters)
        baseline_code = "import functions_framework, " + ", ".join(clients)
        fn, base = [], []
        for _ in range(RUNS):
            fn.append(_importtime(code, cwd, env))
            base.append(_importtime(baseline_code, ROOT, env))
        loaded = fn[-1]["google_cloud"]
        out[name] = {
            "function_import_ms": summary([r["import_ms"] for r in fn], 1),
            "baseline_import_ms": summary([r["import_ms"] for r in base], 1),
            "ratio": ratio([r["import_ms"] for r in fn], [r["import_ms"] for r in base]),
            "needed_clients": list(clients),
            "google_cloud_loaded": loaded,
            "loads_unneeded_client": sorted(
                {c for c in (FIRESTORE, PUBSUB, SECRETS, KMS) if c in loaded} - set(clients)),
        }
    return out


def first_request(name: str, probe: str, env: dict) -> list[float]:
    times = []
    for _ in range(FIRST_REQUEST_RUNS):
        port = free_port()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target", "serve", "--source",
             str(ROOT / "functions" / name / "main.py"), "--host", "127.0.0.1", "--port",
             str(port)], cwd=ROOT, env=env | {"K_SERVICE": name},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
                if time.perf_counter() - start > 60:
                    raise RuntimeError(f"{name} did not answer within 60 s")
                try:
                    requests.get(f"http://127.0.0.1:{port}{probe}", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.01)
            times.append(time.perf_counter() - start)
        finally:
            stop(proc)
    return times


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="keyway-bench-cold-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT), KEYWAY_STATE_DIR=str(Path(tmp) / "state"),
                   KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET=secrets.token_hex(16),
                   KEYWAY_LOG_LEVEL="WARNING")
        env.pop("KEYWAY_BACKEND", None)
        # warm the state directory and bytecode caches once, outside the measurement
        _importtime("import main", ROOT / "functions" / "api", env)
        result = {"method": __doc__.split("\n\n", 1)[1].strip(), "imports": imports(env),
                  "gcp_first_request_imports": gcp_first_request_imports(env)}
        result["first_request_s"] = {}
        for name, probe in (("webhook-github", "/"), ("api", "/healthz")):
            try:
                result["first_request_s"][name] = summary(first_request(name, probe, env), 3)
            except RuntimeError as e:
                result["first_request_s"][name] = {"error": str(e)}
    return result


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
