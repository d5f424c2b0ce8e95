"""The sync part's rows of ``benchmarks/results.md`` (GitHub, GitLab, Bitbucket, Jira) and the
Bitbucket/Jira derivations for its Notes."""

from __future__ import annotations

from benchmarks.stats import met as _met

GOAL = 1.1  # full sync requests / the fewest any client could read the same records with


def _ratio(full: dict, c: dict) -> float | None:
    return round(full["requests"] / c["total_minimum"], 3) if c["total_minimum"] else None


def total_row(provider: str, p: dict) -> tuple:
    """Full sync requests against the provider's minimum (the ``<= 1.1x`` goal)."""
    full, c = p["full"], p["full_vs_minimum"]
    ratio = _ratio(full, c)
    return (f"{provider}: full sync requests / fewest any client needs (Notes)",
            f"{full['requests']} / {c['total_minimum']} = {ratio}x", "1", f"<= {GOAL}x",
            _met(ratio is not None and ratio <= GOAL))


def _repos(measured: dict) -> int:
    return (measured.get("written_by_kind") or {}).get("repositories", 0)


def atlassian_rows(provider: str, p: dict) -> list[tuple]:
    """Bitbucket and Jira: no ETags, so an unchanged list costs one narrowed page."""
    c, full = p["full_vs_minimum"], p["full"]
    unchanged, changed = p["unchanged_resync"], p["after_1pct_changed"]
    children = sum(r["requests"] for r in c["per_endpoint"].values() if r["kind"] == "children")
    return [
        total_row(provider, p),
        (f"{provider}: full sync list pages / minimum; child reads / minimum / records "
         "written / wall", f"{c['lists_points']} / {c['lists_minimum']}; {children} / "
         f"{c['children_minimum']} / {full['written']} / {full['seconds']} s", "1", "", ""),
        (f"{provider}: unchanged re-sync requests (one narrowed page per list, no ETags) / "
         "records written (of which repositories, whose version is when they were seen)",
         f"{unchanged['requests']} / {unchanged['written']} ({_repos(unchanged)})", "1",
         "nothing but repositories", _met(unchanged["written"] == _repos(unchanged))),
        (f"{provider}: re-sync after 1% changed requests / written",
         f"{changed['requests']} / {changed['written']}", "1", "", ""),
    ]


def sync_notes(sync: dict) -> list[str]:
    """The Bitbucket and Jira minimums, derived (GitHub's and GitLab's are in report.py)."""
    notes = []
    bb = (sync.get("bitbucket") or {}).get("full_vs_minimum", {}).get("derivation")
    if bb:
        notes.append(
            "Sync, Bitbucket minimum (no ETags; `pagelen` at most 50 on the pull request "
            "list, 100 on the workspace, repository and comment lists; the issue list is "
            "served 50 a page by the simulator): 1 workspaces page + 1 repositories page per "
            "workspace + per repository ceil(PRs/50) pull request pages, whose "
            "`fields=+values.participants` carries the approvals (no per-PR GET), + "
            "ceil(issues/50) issue pages where the tracker is on = "
            f"{bb['list_pages']} list pages; then per pull request ceil(comments/100) "
            f"comment pages, none where `comment_count` is 0 ({bb['pull_requests']} PRs, "
            f"{bb['pull_requests_without_comments']} without comments: "
            f"{bb['pr_comment_pages']}), and per issue max(1, ceil(comments/100)) = "
            f"{bb['issue_comment_pages']} for {bb['issues']} issues: an issue carries no "
            "comment count and Bitbucket has no repository-wide comment list, so every "
            "issue's list is asked once. Not counted: the repository-wide "
            "`pullrequests/activity` log (comments, approvals and updates of every pull "
            "request, one list): it records events, not current state (a withdrawn approval, "
            "an edited or deleted comment), so it does not give the same records; the "
            "simulator does not serve it. The bench runs the Bitbucket client without its "
            "local 1,000-an-hour budget (which would pause this sync for hours).")
    jira = (sync.get("jira") or {}).get("full_vs_minimum", {}).get("derivation")
    if jira:
        notes.append(
            "Sync, Jira minimum (no ETags): ceil(projects/100) `/project/search` pages + "
            f"ceil(issues/100) `/search/jql` pages for all {jira['issues']} issues in one "
            "query (`maxResults` at most 100 with fields; keyway asks one query per project "
            f"for its per-project cursor: {jira['search_pages_one_query_per_project']} pages) "
            f"= {jira['list_pages']}; each issue's `comment` field carries its first "
            f"{jira['embedded_comments']} comments and their `total` (the cap is the "
            "simulator's: Jira publishes none, so keyway reads the comment list whenever "
            "`total` exceeds what came), so only an issue with more comments needs "
            f"ceil((total - {jira['embedded_comments']})/100) more requests "
            f"({jira['issues_over_embedded']} issues, {jira['comment_follow_ups']} requests). "
            "An unchanged re-sync costs 1 project page + 1 narrowed search per project and "
            "rewrites only the project records (a Jira project carries no update time, so its "
            "record's version is the time it was seen).")
    return notes


def sync_rows(sync: dict) -> list[tuple]:
    rows = []
    for provider in ("bitbucket", "jira"):
        if sync.get(provider) and "full_vs_minimum" in sync[provider]:
            rows += atlassian_rows(provider, sync[provider])
            rows += _totals_rows(provider, sync[provider].get("unchanged_totals_due"),
                                 sync[provider].get("unchanged_resync"))
    for provider in ("github", "gitlab"):
        p = sync.get(provider)
        if not p:
            continue
        c, full = p["full_vs_minimum"], p["full"]
        unchanged, changed = p["unchanged_resync"], p["after_1pct_changed"]
        rows.append(total_row(provider, p))
        rows += _reconcile_rows(provider, p.get("reconcile"))
        rows += _totals_rows(provider, p.get("unchanged_totals_due"),
                             p.get("unchanged_resync"))
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


def _totals_rows(provider: str, due: dict | None, unchanged: dict | None) -> list[tuple]:
    """An unchanged re-sync whose list totals are due (GitHub's GraphQL repository_totals,
    Jira's approximate count; none for GitLab, whose X-Total rides on pages, or Bitbucket)."""
    if not due or not unchanged or due["requests"] == unchanged["requests"]:
        return []
    extra = due["requests"] - unchanged["requests"]
    pct = round(100 * extra / max(1, unchanged["requests"]), 1)
    goal = provider == "github"  # Jira's one request a project is paid once a day
    return [(f"{provider}: unchanged re-sync with the list totals due, once per "
             "KEYWAY_RECONCILE_TOTALS_HOURS (requests / extra / GraphQL points)",
             f"{due['requests']} / +{extra} ({pct} %) / {due['graphql_points']}", "1",
             "< 5 %" if goal else "", _met(pct < 5) if goal else "")]


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
