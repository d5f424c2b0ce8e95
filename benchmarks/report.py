"""``benchmarks/results.md``: one table of every figure in ``results.json``."""

from __future__ import annotations

from typing import Any


def _s(summary: dict | None, unit: str = "") -> str:
    if not summary or "median" not in summary:
        return "n/a"
    return f"{summary['min']:g} / **{summary['median']:g}** / {summary['max']:g}{unit}"


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _sync_rows(sync: dict) -> list[tuple]:
    rows = []
    for provider in ("github", "gitlab"):
        p = sync.get(provider)
        if not p:
            continue
        c, full = p["full_vs_minimum"], p["full"]
        rows += [
            (f"{provider}: full sync, list endpoints (points / minimum ceil(n/100))",
             f"{c['lists_points']} / {c['lists_minimum']} = {c['lists_ratio']}x", "1",
             "= minimum", _met(c["lists_points"] <= c["lists_minimum"])),
            (f"{provider}: full sync, per-item children (points / minimum)",
             f"{c['children_points']} / {c['children_minimum']}", "1",
             "one request per parent", _met(c["children_points"] <= c["children_minimum"])),
            (f"{provider}: full sync total requests / points / wall",
             f"{full['requests']} / {full['points']} / {full['seconds']} s", "1", "", ""),
            (f"{provider}: unchanged re-sync requests (304s) / points",
             f"{p['unchanged_resync']['requests']} ({p['unchanged_resync']['not_modified']})"
             f" / {p['unchanged_resync']['points']}", "1", "0 points",
             _met(p["unchanged_resync"]["points"] == 0)),
            (f"{provider}: re-sync after 1% changed requests / points / written",
             f"{p['after_1pct_changed']['requests']} / {p['after_1pct_changed']['points']} / "
             f"{p['after_1pct_changed']['written']}", "1", "", ""),
        ]
    return rows


def _peer_rows(peer: dict) -> list[tuple]:
    if "error" in peer:
        return [("peer airbyte-source-github 2.7.1", peer["error"][:300], "0", "", "n/a")]
    rows = []
    for label in ("keyway_full", "peer_page100_full", "peer_default_full",
                  "keyway_incremental", "peer_page100_incremental", "peer_default_incremental"):
        r = peer.get(label)
        if not r:
            continue
        extra = f", {r.get('requests_per_minute')} req/min" if "peer" in label else ""
        rows.append((f"peer comparison: {label} requests (of which GraphQL) / REST points / wall",
                     f"{r['requests']} ({r.get('graphql', 0)}) / {r.get('rest_points')} / "
                     f"{r['seconds']} s{extra}", "1", "", ""))
    ratios = peer.get("ratios_keyway_over_peer", {})
    rows.append((f"keyway / better peer ({peer.get('better_peer')}): full requests, wall",
                 f"{ratios.get('full_requests')}x, {ratios.get('full_wall')}x", "1",
                 "<= 0.5x both", _met(peer.get("goal_met"))))
    rows.append(("keyway / better peer: incremental requests, points, wall",
                 f"{ratios.get('incremental_requests')}x, {ratios.get('incremental_points')}x, "
                 f"{ratios.get('incremental_wall')}x", "1", "", ""))
    return rows


def _crypto_rows(crypto: dict) -> list[tuple]:
    rows = []
    for name, p in crypto.get("per_payload", {}).items():
        runs = str(p["fieldcipher_ops_per_s"].get("runs", ""))
        rows += [
            (f"crypto {name}: FieldCipher encrypt+decrypt ops/s",
             _s(p["fieldcipher_ops_per_s"]), runs, "", ""),
            (f"crypto {name}: raw AESGCM (one object) ops/s", _s(p["raw_aesgcm_ops_per_s"]),
             runs, "", ""),
            (f"crypto {name}: time ratio FieldCipher / raw AESGCM",
             _s(p["time_ratio_field_over_raw"], "x"), runs, "<= 1.3x",
             _met(p["time_ratio_field_over_raw"]["median"] <= 1.3)),
            (f"crypto {name}: ratio vs raw AESGCM built per call",
             _s(p["time_ratio_field_over_raw_new_object"], "x"), runs, "", ""),
        ]
    u = crypto.get("unwrap_per_10000_decrypts")
    if u:
        rows.append(("key-service unwraps per 10,000 decrypts (fresh instance)",
                     f"{u['unwraps']} (calls: {u['key_service_calls']})", "1",
                     "1 per instance", _met(u["goal_met"])))
    return rows


def _hook_rows(h: dict) -> list[tuple]:
    if "error" in h:
        return [("webhook ingestion", h["error"], "0", "", "n/a")]
    k, b = h["keyway_stack"], h["bare_flask_hmac"]
    runs = str(k["deliveries_per_s"]["runs"])
    return [
        ("webhooks: keyway stack deliveries/s (32 clients)", _s(k["deliveries_per_s"]), runs,
         "", ""),
        ("webhooks: bare Flask HMAC deliveries/s", _s(b["deliveries_per_s"]), runs, "", ""),
        ("webhooks: throughput ratio stack / bare", _s(h["throughput_ratio_stack_over_bare"],
                                                       "x"), runs, ">= 0.7x",
         _met(h["throughput_ratio_stack_over_bare"]["median"] >= 0.7)),
        ("webhooks: keyway p50 / p99 ack latency", f"{_s(k['p50_ms'], ' ms')} ; "
         f"{_s(k['p99_ms'], ' ms')}", runs, "p99 <= 50 ms", _met(k["p99_ms"]["median"] <= 50)),
        ("webhooks: bare p50 / p99 ack latency", f"{_s(b['p50_ms'], ' ms')} ; "
         f"{_s(b['p99_ms'], ' ms')}", runs, "", ""),
    ]


def _cold_rows(c: dict) -> list[tuple]:
    rows = []
    for name, r in c.get("imports", {}).items():
        unneeded = r.get("loads_unneeded_client") or []
        met = r["ratio"].get("median", 99) <= 1.1 and not unneeded
        rows.append((f"import {name}: function ms ; baseline ms ; ratio",
                     f"{_s(r['function_import_ms'])} ; {_s(r['baseline_import_ms'])} ; "
                     f"{_s(r['ratio'], 'x')}" + (f" ; loads {unneeded}" if unneeded else ""),
                     str(r["ratio"].get("runs", "")), "<= 1.1x, no unused client", _met(met)))
    for name, r in c.get("gcp_first_request_imports", {}).items():
        unneeded = r.get("loads_unneeded_client") or []
        met = r["ratio"].get("median", 99) <= 1.1 and not unneeded
        rows.append((f"gcp backend, import {name} + adapters build() loads on 1st request: "
                     "ms ; baseline ms ; ratio",
                     f"{_s(r['function_import_ms'])} ; {_s(r['baseline_import_ms'])} ; "
                     f"{_s(r['ratio'], 'x')}" + (f" ; loads unneeded {unneeded}" if unneeded
                                                 else ""),
                     str(r["ratio"].get("runs", "")), "<= 1.1x, no unused client", _met(met)))
    for name, r in c.get("first_request_s", {}).items():
        rows.append((f"process start -> first answer: {name}",
                     r.get("error") or _s(r, " s"), str(r.get("runs", 0)), "", ""))
    return rows


def markdown(results: dict[str, Any]) -> str:
    m, b = results["machine"], results["benchmarks"]
    lines = [
        "# keyway benchmarks (issue 9)", "",
        f"Measured {results['measured_at']} on {m['cpu']}, {m['cores']} cores, "
        f"{m['system']}, Python {m['python']}; `make bench` took {results['total_seconds']} s "
        f"({', '.join(f'{k} {v} s' for k, v in results['seconds'].items())}).", "",
        "Values with three numbers are min / **median** / max over the runs shown. Ratios come "
        "from runs interleaved in this one invocation. Counts (requests, points) are "
        "deterministic, so one run. Methods are in `results.json` (`method` of each part).", "",
        "| Figure | Measured | Runs | Goal | Met |", "|---|---|---|---|---|",
    ]
    sections = [("sync", _sync_rows), ("peer", _peer_rows), ("crypto", _crypto_rows),
                ("webhooks", _hook_rows), ("cold_start", _cold_rows)]
    for key, fn in sections:
        part = b.get(key)
        if part is None:
            continue
        if "error" in part and key not in ("peer", "webhooks"):
            lines.append(f"| {key} | failed: {part['error'][:200]} | 0 | | n/a |")
            continue
        try:
            rows = fn(part)
        except (KeyError, TypeError) as e:
            rows = [(key, f"could not tabulate: {e!r}", "", "", "")]
        lines += ["| " + " | ".join(str(x).replace("|", "/") for x in row) + " |"
                  for row in rows]
    lines += ["", "## Notes (why a goal is missed, what bounds a figure)", ""]
    lines += [f"- {note}" for note in _notes(b)]
    lines.append("")
    return "\n".join(lines)


def _notes(b: dict) -> list[str]:
    notes = []
    sync = b.get("sync") or {}
    if "github" in sync:
        notes.append(
            "Sync: every list endpoint costs exactly ceil(items/100) requests; children have "
            "no list-wide REST endpoint (GitHub reviews per pull request, GitLab notes per "
            "merge request/issue and approvals per merge request), so they cost one request "
            "per parent on a full sync. Re-syncs send only conditional requests (304 = 0 "
            "points); after 1% changed, GitHub's review lists of the changed pull requests "
            "answered 304 (reviews unchanged).")
    peer = b.get("peer") or {}
    if "ratios_keyway_over_peer" in peer:
        d = peer.get("peer_default_full", {})
        notes.append(
            "Peer: keyway's full-sync request count is above the peer's because keyway reads "
            "reviews with one REST request per pull request (2,000) while the peer reads them "
            "through GraphQL (a page of pull requests with their reviews per request); on the "
            "list endpoints alone keyway is at the minimum (see the sync rows). The peer's "
            f"default page size run ran at {d.get('requests_per_minute')} requests/min over "
            f"{d.get('seconds')} s, i.e. bound by its own 900 requests/min throttle. The "
            "simulator meters no GraphQL points (GitHub has a separate GraphQL budget). Peer "
            "wall time includes its process start; one run each, not interleaved (the default "
            "run alone takes ~3 minutes).")
    if "per_payload" in (b.get("crypto") or {}):
        notes.append(
            "Crypto: FieldCipher misses the 1.3x goal against a reused AESGCM object: per "
            "call it builds a new AESGCM object for encrypt and for decrypt "
            "(shared/crypto/_aead.py), encodes the 9-part associated data and takes the "
            "keyring lock to reserve a use; against a baseline that also builds AESGCM per "
            "call the ratio is the second figure. Unwraps meet the goal: one KMS decrypt per "
            "keyring instance.")
    hooks = b.get("webhooks") or {}
    if "keyway_stack" in hooks:
        notes.append(
            "Webhooks: the load generator (32 Python threads) runs on the same 2 cores as the "
            "server, which caps both sides; the local stack also runs its bus pump and the "
            "ingest function on the same process. Its p99 of over a second is measured, not "
            "diagnosed here (candidates: SQLite write serialisation of publish + dedupe under "
            "32 writers, the pump's concurrent deliveries).")
    cold = b.get("cold_start") or {}
    if "gcp_first_request_imports" in cold:
        notes.append(
            "Cold start: `import main` loads no google.cloud client (ports are built on the "
            "first request), so the import ratios are below 1. On the gcp backend "
            "shared/bootstrap.build() then imports Firestore, Pub/Sub, Cloud KMS and Secret "
            "Manager for every function, so a webhook function pays for a KMS client it never "
            "uses (rows 'gcp backend ...').")
    notes.append(
        "Machine noise: other work was running on this 2-core machine during the run (load "
        "average about 2.5), so absolute figures are noisy; ratios come from interleaved runs.")
    return notes
