"""Talking to a provider simulator the way keyway does, and holding each answer to a published
description.

Requests go through keyway's own :class:`shared.fetch.client.ProviderClient` (the allowlist,
the page-size parameter, the headers keyway sends, its Link / ``next`` parsing), so a contract
case exercises the exact URL keyway builds. :func:`conforms` then checks what the description
promises: the status is one it documents for the operation and the JSON body validates against
that status's schema.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.clock import SystemClock
from shared.fetch.client import ApiResponse, ProviderClient
from shared.providers import registry
from tests.contract._described import Description

ETAG = re.compile(r'^(W/)?"[\x21\x23-\x7e]*"$')  # RFC 9110 entity-tag
LINK = re.compile(r'^<([^>]+)>;\s*rel="([a-z]+)"$')


def plan_params(provider: str, op: str) -> dict[str, Any]:
    """The query parameters keyway's sync plan (``shared/fetch/<provider>/plan.py``) sends to
    ``op``, so a case asks exactly what a sync asks."""
    plan = importlib.import_module(f"shared.fetch.{provider}.plan").PLAN
    specs = [plan.repositories, *plan.resources, *plan.children.values()]
    if plan.repository_scopes is not None:
        specs.append(plan.repository_scopes)
    found = [dict(s.params) for s in specs if getattr(s, "template", None) == op]
    assert found, f"no {provider} sync plan list calls {op}"
    return found[0]


def purpose_of(provider: str, op: str) -> str:
    """The first client purpose whose allowlist names ``op`` (a comment write: ``act``)."""
    purposes = registry.get(provider).api.purposes
    return next(p for p, templates in purposes.items() if op in templates)


def client(provider: str, api_base: str, token: str, purpose: str = "fetch") -> ProviderClient:
    """keyway's ``purpose`` client for ``provider`` at a loopback simulator (local mode)."""
    return ProviderClient(registry.get(provider), api_base, token, requests.Session(),
                          SystemClock(), purpose=purpose, local_mode=True, max_attempts=1)


@dataclass(frozen=True)
class Case:
    """One contract case: ``op`` (``"GET /repos/{owner}/{repo}"``) sent with ``token`` (a key
    of the test's token table), path parameters and query or body from the seeded data."""

    op: str
    token: str = "app"
    path: Callable[[Mapping[str, Any]], dict[str, str]] = lambda seeded: {}
    query: dict[str, Any] | Callable[[Mapping[str, Any]], dict[str, Any]] = field(
        default_factory=dict)
    body: Callable[[Mapping[str, Any]], Any] | None = None

    @property
    def method(self) -> str:
        return self.op.split(" ", 1)[0]

    @property
    def template(self) -> str:
        return self.op.split(" ", 1)[1]

    def params(self, seeded: Mapping[str, Any]) -> dict[str, Any]:
        return self.query(seeded) if callable(self.query) else self.query

    def send(self, api: ProviderClient, seeded: Mapping[str, Any]) -> ApiResponse:
        params = self.path(seeded)
        body = self.body(seeded) if self.body else None
        if self.method == "GET":
            return api.get(self.op, params, self.params(seeded))
        return getattr(api, self.method.lower())(self.op, params, body)


def conforms(description: Description, op: str, answer: ApiResponse) -> list[str]:
    """Where ``answer`` breaks ``description`` for ``op`` (empty: it conforms)."""
    method, template = op.split(" ", 1)
    operation = description.operation(method, template)
    if answer.status not in operation.statuses:
        return [f"status {answer.status} is not documented for {op} "
                f"(documented: {sorted(operation.statuses)})"]
    return description.errors(operation, answer.status, answer.body)


def assert_conforms(description: Description, op: str, answer: ApiResponse) -> None:
    problems = conforms(description, op, answer)
    assert not problems, (f"{op} answered {answer.status} outside {description.name}:\n  "
                          + "\n  ".join(problems[:15]) + "\nbody: "
                          + json.dumps(answer.body)[:1500])


def links(header: str) -> dict[str, str]:
    """``Link`` as ``{rel: url}``; AssertionError on anything malformed."""
    found = {}
    for part in header.split(","):
        match = LINK.match(part.strip())
        assert match, f"malformed Link entry {part.strip()!r}"
        found[match.group(2)] = match.group(1)
    return found


def integer_header(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(name)
    assert value is not None and value.isdigit(), f"{name} missing or not an integer: {value!r}"
    return int(value)


def without(body: Any, key: str) -> Any:
    """``body`` (or its first item, for a list) with ``key`` removed: a mutation."""
    copy = json.loads(json.dumps(body))
    target = copy[0] if isinstance(copy, list) else copy
    for name in ("values", "issues", "comments", "installations", "repositories"):
        if isinstance(target, dict) and key not in target and isinstance(target.get(name), list):
            target = target[name][0]
    del target[key]
    return copy
