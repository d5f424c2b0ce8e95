"""``benchmarks/results.md``: one table of every figure in ``results.json``."""

from __future__ import annotations

from typing import Any

from benchmarks import write_pacing
from benchmarks.report_hooks import deployed_rows, freshness_rows
from benchmarks.report_hooks import notes as _hook_notes
from benchmarks.report_sync import sync_notes as _sync_notes
from benchmarks.report_sync import sync_rows as _sync_rows
from benchmarks.stats import cell as _s
from benchmarks.stats import met as _met
from benchmarks.store_writes import rows as _store_rows


def _count(s: dict) -> str:
    """A count over runs: one number when every run gave it, else min / median / max."""
    if s.get("min") == s.get("max"):
        return f"{s.get('median'):g}"
    return _s(s)


def _peer_rows(peer: dict) -> list[tuple]:
    if "error" in peer:
        return [("peer airbyte-source-github 2.7.1", peer["error"][:300], "0", "", "n/a")]
    rows = []
    for label in ("keyway_full", "peer_page100_full", "peer_default_full",
                  "keyway_incremental", "peer_page100_incremental", "peer_default_incremental"):
        r = (peer.get("summary") or {}).get(label)
        if not r:
            continue
        runs = str(r["seconds"]["runs"])
        extra = ""
        if "peer" in label:
            rates = [x.get("requests_per_minute") for x in peer["runs"][label]]
            extra = f", {'/'.join(str(x) for x in rates)} req/min"
        if label.startswith("peer_default"):
            extra += " (1 run: bound by the peer's own 900 req/min throttle)"
        rows.append((f"peer comparison: {label} requests (of which GraphQL) / REST points / "
                     "GraphQL points / wall",
                     f"{_count(r['requests'])} ({_count(r['graphql'])}) / "
                     f"{_count(r['rest_points'])} / {_count(r['graphql_points'])} / "
                     f"{_s(r['seconds'], ' s')}{extra}", runs, "", ""))
    ratios = peer.get("ratios_keyway_over_peer", {})
    runs = str(ratios.get("full_requests", {}).get("runs", ""))
    rows.append(("keyway / peer (page size 100), interleaved pairs: full requests ; wall",
                 f"{_s(ratios.get('full_requests'), 'x')} ; {_s(ratios.get('full_seconds'), 'x')}",
                 runs, "<= 0.5x both", _met(peer.get("goal_met"))))
    rows.append(("keyway / peer (page size 100), interleaved pairs: incremental requests ; "
                 "points ; wall",
                 f"{_s(ratios.get('incremental_requests'), 'x')} ; "
                 f"{_s(ratios.get('incremental_points'), 'x')} ; "
                 f"{_s(ratios.get('incremental_seconds'), 'x')}", runs, "", ""))
    g = peer.get("goal_reachability")
    if g:
        rows.append(("fewest requests any client can read these lists + reviews with "
                     "(list pages + review queries) vs half the peer's",
                     f"{g['keyway_minimum_requests']} ({g['of_which_list_pages']} + "
                     f"{g['of_which_review_queries']}) vs {g['half_of_peer']:g}", "1",
                     "<= 0.5x reachable", _met(g["requests_goal_reachable"])))
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
             _s(p["time_ratio_field_over_raw"], "x"), runs, "<= 2.0x",
             _met(p["time_ratio_field_over_raw"]["median"] <= 2.0)),
            (f"crypto {name}: ratio vs raw AESGCM built per call",
             _s(p["time_ratio_field_over_raw_new_object"], "x"), runs, "", ""),
        ]
        if "time_ratio_field_new_context_per_call_over_raw" in p:
            rows.append((f"crypto {name}: ratio with a new FieldContext per call / raw AESGCM",
                         _s(p["time_ratio_field_new_context_per_call_over_raw"], "x"), runs,
                         "", ""))
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


def _measured(results: dict[str, Any]) -> str:
    """When and where: one line for a whole run, or each part's time after partial runs."""
    m = results["machine"]
    where = f"on {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}"
    seconds = ", ".join(f"{k} {v} s" for k, v in results["seconds"].items())
    stamps = results.get("measured_at_by_part") or {}
    if len(set(stamps.values())) <= 1:
        return (f"Measured {results['measured_at']} {where}; `make bench` took "
                f"{results['total_seconds']} s ({seconds}).")
    parts = "; ".join(f"{name} {stamp}" for name, stamp in stamps.items())
    return (f"Parts measured at different times ({parts}) {where}; part durations: "
            f"{seconds}. Parts run alone with `python -m benchmarks NAME ...`.")


def markdown(results: dict[str, Any]) -> str:
    b = results["benchmarks"]
    lines = [
        "# keyway benchmarks (issue 9)", "", _measured(results), "",
        "Values with three numbers are min / **median** / max over the runs shown. Ratios come "
        "from runs interleaved in one invocation. Sync counts (requests, points) are "
        "deterministic, so one run; the peer comparison repeats its keyway and page-size-100 "
        "peer runs interleaved. Methods are in `results.json` (`method` of each part).", "",
        "| Figure | Measured | Runs | Goal | Met |", "|---|---|---|---|---|",
    ]
    sections = [("sync", _sync_rows), ("peer", _peer_rows), ("crypto", _crypto_rows),
                ("webhooks", _hook_rows), ("webhooks_deployed", deployed_rows),
                ("freshness", freshness_rows), ("cold_start", _cold_rows),
                ("write_pacing", write_pacing.rows), ("store_writes", _store_rows),
                ("convergence", lambda p: __import__("benchmarks.convergence").convergence.rows(p))]
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
    lines += [f"- {note}" for note in _notes(b, results.get("load_by_part"))]
    lines.append("")
    return "\n".join(lines)


def _reachability_note(peer: dict, g: dict) -> str:
    prs = (peer.get("scale") or {}).get("prs", 0)
    made = peer["summary"]["keyway_full"]["requests"]["median"]
    least = g["keyway_minimum_requests"]
    where = ("keyway is at that minimum" if made == least
             else f"keyway made {made:g}: its review batches follow each repository's pages "
                  "(see Sync)")
    verdict = ("reachable" if g["requests_goal_reachable"]
               else "physically unreachable on this org")
    return (f"Requests goal (<= 0.5x the peer): {verdict}. Any client reading these lists "
            f"once at 100 a page needs {g['of_which_list_pages']} REST requests, and the "
            f"reviews of {prs:,} pull requests at 100 per GraphQL query "
            f"{g['of_which_review_queries']} more: {least} requests, against half the peer's "
            f"{g['peer_requests_median']:g} = {g['half_of_peer']:g}; {where}. The peer reads "
            "the same lists, so no client can make half its requests.")


def _notes(b: dict, loads: dict[str, float] | None = None) -> list[str]:
    notes = []
    sync = b.get("sync") or {}
    if "github" in sync:
        notes.append(
            "Sync: every list endpoint costs exactly ceil(items/100) REST requests. GitHub "
            "reviews have no list-wide REST endpoint; keyway reads them through GraphQL, 100 "
            "pull requests a query (the physical minimum is ceil(PRs/100) queries, plus one "
            "per further 100 reviews of a PR with more than 100), so they spend GraphQL points "
            "from GitHub's separate GraphQL budget, not REST requests. keyway batches the "
            "changed pull requests of one page of one repository's list, so that page is "
            "written only together with its reviews (nothing lost on a crash between pages); "
            "each repository's last page is a partial batch, which is why it can take a few "
            "queries more than ceil(PRs/100) (one per repository at most). The issue's scale "
            "seeds no reviews; the number of queries does not depend on it. GitLab notes and "
            "approvals have no list-wide REST endpoint; keyway reads them through GraphQL, "
            "the notes (100 each, further pages one query per 100) and approvers of up to 100 "
            "merge requests or the notes of up to 100 issues of one project per query, by "
            "iids; GitLab counts those queries against the same per-minute API limit as REST. "
            "Its minimum is the list pages plus, per project, ceil(MRs/100) + ceil(issues/100) "
            "queries, plus one per further 100 notes (system notes included) of a parent. "
            "Re-syncs send only conditional REST requests (304 = 0 points) and ask GraphQL "
            "only for the pull requests, merge requests and issues that changed.")
    notes += _sync_notes(sync)
    peer = b.get("peer") or {}
    if "ratios_keyway_over_peer" in peer:
        d = (peer.get("runs", {}).get("peer_default_full") or [{}])[0]
        g = peer.get("goal_reachability") or {}
        notes.append(
            "Peer: the page-size-100 peer and keyway's full and incremental syncs ran "
            f"{peer.get('runs_interleaved')} times interleaved (keyway, peer, keyway, peer) in "
            "one invocation; ratios are per back-to-back pair. The default-page-size peer ran "
            f"once: {d.get('requests_per_minute')} requests/min over {d.get('seconds')} s, "
            "i.e. bound by its own 900 requests/min throttle. Both read reviews through "
            "GraphQL, metered as points apart from REST. Peer wall time includes its process "
            "start.")
        if g:
            notes.append(_reachability_note(peer, g))
    if "per_payload" in (b.get("crypto") or {}):
        notes.append(
            "Crypto: FieldCipher keeps, per context object it has seen, the associated data "
            "and header it built (a new but equal context is served by a bounded LRU), one "
            "AESGCM object per live key version, and reads the keyring's lease and view "
            "inline with their freshness clock read; IVs come from os.urandom read 256 at a "
            "time (each handed out once, the block dropped in a forked child), so the IV costs "
            "less than the raw baseline's os.urandom(12) per call. What is left is Python "
            "around one AES-GCM call. Building a new FieldContext per call (as the vault's "
            "record codec does) costs more than the cipher itself: a frozen dataclass with "
            "validation, the third ratio. "
            "Unwraps meet the goal: one KMS decrypt per keyring instance.")
    hooks = b.get("webhooks") or {}
    if "keyway_stack" in hooks:
        notes.append(
            "Webhooks: the load generator (32 Python threads) runs on the same 2 cores as the "
            "server, which caps both sides. The local stack serves every function from one "
            "Python process: each delivery's acknowledgement (HMAC, one create-if-absent "
            "claim, a publish, one log line) shares that process's GIL "
            "with the bus pump and with the ingest function normalizing the same events, "
            "while the bare app only checks the HMAC. SQLite writers queue on an in-process "
            "lock (no busy-handler sleeps) at synchronous=normal (KEYWAY_SQLITE_SYNCHRONOUS).")
    notes += _hook_notes(b)
    cold = b.get("cold_start") or {}
    if "gcp_first_request_imports" in cold:
        notes.append(
            "Cold start: `import main` loads no google.cloud client (ports are built on the "
            "first request), so the import ratios are below 1. On the gcp backend "
            "shared/bootstrap.build() imports the Firestore and Pub/Sub adapters; Cloud KMS and "
            "Secret Manager are Lazy ports imported on first use, so the 'gcp backend' rows "
            "add only what the function's own work loads (KMS only in vault-P and oauth-P).")
    if loads:
        notes.append(
            "Machine noise: the 1-minute load average as each part started was "
            + ", ".join(f"{k} {v}" for k, v in loads.items())
            + " on 2 cores (a part's own earlier work counts too); absolute figures move with "
            "it, ratios come from runs interleaved in one invocation.")
    return notes
