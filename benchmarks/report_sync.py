"""The sync part's rows of ``benchmarks/results.md`` (GitHub and GitLab)."""

from __future__ import annotations


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def sync_rows(sync: dict) -> list[tuple]:
    rows = []
    for provider in ("github", "gitlab"):
        p = sync.get(provider)
        if not p:
            continue
        c, full = p["full_vs_minimum"], p["full"]
        unchanged, changed = p["unchanged_resync"], p["after_1pct_changed"]
        rows += _reconcile_rows(provider, p.get("reconcile"))
        rows.append((f"{provider}: full sync, list endpoints (REST points / minimum "
                     "ceil(n/100))", f"{c['lists_points']} / {c['lists_minimum']} = "
                     f"{c['lists_ratio']}x", "1", "= minimum",
                     _met(c["lists_points"] <= c["lists_minimum"])))
        if c.get("children_via") == "graphql" and provider == "gitlab":
            bound, d = c["children_per_page_bound"], c.get("derivation") or {}
            rows.append((f"{provider}: full sync, notes and approvals (GraphQL queries / "
                         "minimum: per project ceil(MRs/100) + ceil(issues/100), + 1 per "
                         "further 100 notes of a parent)",
                         f"{c['children_requests']} / {c['children_minimum']} "
                         f"({d.get('children_queries')} + {d.get('notes_follow_ups')})", "1",
                         "= one per list page", _met(c["children_requests"] <= bound)))
            rows.append((f"{provider}: full sync requests / minimum (list pages "
                         "ceil(n/100) per list + the GraphQL minimum above)",
                         f"{full['requests']} / {c['total_minimum']} "
                         f"({d.get('list_pages')} + {c['children_minimum']})", "1",
                         "= minimum", _met(full["requests"] <= c["total_minimum"])))
        elif c.get("children_via") == "graphql":
            bound = c["children_per_page_bound"]
            rows.append((f"{provider}: full sync, reviews (GraphQL queries / one per page of "
                         "a repository's PR list / minimum ceil(PRs/100) + 1 per further 100 "
                         "reviews of a PR)",
                         f"{c['children_requests']} / {bound} / {c['children_minimum']}", "1",
                         "= one per page", _met(c["children_requests"] <= bound)))
        else:
            rows.append((f"{provider}: full sync, per-item children (REST requests / minimum "
                         "one per parent, no batch read)",
                         f"{c['children_requests']} / {c['children_minimum']}", "1",
                         "= minimum", _met(c["children_requests"] <= c["children_minimum"])))
        if "limit_units" in full and provider == "gitlab":  # one limit for REST and GraphQL
            rows += [
                (f"{provider}: full sync requests (REST + GraphQL) / API limit units (REST "
                 "answers not 304 + GraphQL queries) / wall",
                 f"{full['requests']} ({full['rest_requests']} + {full['graphql_queries']}) / "
                 f"{full['limit_units']} / {full['seconds']} s", "1", "", ""),
                (f"{provider}: unchanged re-sync requests (304s) / API limit units",
                 f"{unchanged['requests']} ({unchanged['not_modified']}) / "
                 f"{unchanged['limit_units']}", "1", "0 units",
                 _met(unchanged["limit_units"] == 0)),
                (f"{provider}: re-sync after 1% changed requests (REST + GraphQL) / API limit "
                 "units / written",
                 f"{changed['requests']} ({changed['rest_requests']} + "
                 f"{changed['graphql_queries']}) / {changed['limit_units']} / "
                 f"{changed['written']}", "1", "", ""),
            ]
            continue
        rows += [
            (f"{provider}: full sync requests (REST + GraphQL) / REST points / GraphQL "
             "points / wall",
             f"{full['requests']} ({full['rest_requests']} + {full['graphql_queries']}) / "
             f"{full['points']} / {full['graphql_points']} / {full['seconds']} s", "1", "", ""),
            (f"{provider}: unchanged re-sync requests (304s) / REST points / GraphQL points",
             f"{unchanged['requests']} ({unchanged['not_modified']}) / {unchanged['points']} "
             f"/ {unchanged['graphql_points']}", "1", "0 points",
             _met(unchanged["points"] == unchanged["graphql_points"] == 0)),
            (f"{provider}: re-sync after 1% changed requests (REST + GraphQL) / REST points / "
             "GraphQL points / written",
             f"{changed['requests']} ({changed['rest_requests']} + "
             f"{changed['graphql_queries']}) / {changed['points']} / "
             f"{changed['graphql_points']} / {changed['written']}", "1", "", ""),
        ]
    return rows


def _reconcile_rows(provider: str, found: dict | None) -> list[tuple]:
    """The reconciliation cycle's figures (deleted records), when the part measured them."""
    if not found:
        return []
    due, full = found["nothing_due"], found["forced_full_sweep"]
    return [
        (f"{provider}: reconciliation after an unchanged re-sync (requests, nothing due / "
         "% of the re-sync's requests)", f"{due['requests']} / {found['unchanged_extra_pct']} %",
         "1", "< 5 %", _met(found["unchanged_extra_pct"] < 5)),
        (f"{provider}: full id sweep of every repository (requests / per repository, once per "
         "KEYWAY_RECONCILE_DAYS / targeted sweeps / tombstones)",
         f"{full['requests']} / {found['full_sweep_per_repository_per_period']} / "
         f"{full['targeted_sweeps']} / {full['tombstoned']}", "1", "", ""),
    ]
