"""The providers' published API descriptions, loaded once per session, and what the simulator
contract tests ask of them: an operation by allowlist template, its documented statuses, and a
validator for its documented response body.

* GitHub: npm ``@octokit/openapi`` (``api.github.com.json``; GitHub Enterprise Server has its
  own files in the same package and differs) and ``@octokit/graphql-schema`` (``schema.graphql``),
  pinned in ``tests/provider_specs/package-lock.json``.
* Jira Cloud and Bitbucket Cloud: pinned copies outside the project, in ``../shared/specs/``
  (see ``SOURCES.md`` there), read where they lie and never copied in.

OpenAPI 3.0 schemas are turned into JSON Schema draft 4 (the dialect 3.0 extends): ``nullable:
true`` becomes ``anyOf: [<schema>, {"type": "null"}]``, and a ``oneOf`` with a
``discriminator`` an ``anyOf`` (the discriminator, not exclusivity, picks the branch); ``$ref``s
resolve against the document's own ``components``. A description that is missing skips its
tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "tests" / "provider_specs" / "node_modules" / "@octokit"
GITHUB_REST = NODE / "openapi" / "generated" / "api.github.com.json"
GITHUB_GRAPHQL = NODE / "graphql-schema" / "schema.graphql"
SHARED_SPECS = ROOT.parent / "shared" / "specs"
JIRA = SHARED_SPECS / "jira" / "swagger-v3.v3.json"
BITBUCKET = SHARED_SPECS / "bitbucket" / "openapi.yml"
_PARAM = re.compile(r"\{[^}]+\}")


def strict() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(path: Path) -> Path:
    """``path``, or skip (fail under ``CI=true``) when it is absent."""
    if not path.is_file():
        why = f"published API description missing: {path} (run `make test-deps`; see SOURCES)"
        if strict():
            pytest.fail(f"required under CI=true: {why}", pytrace=False)
        pytest.skip(why)
    return path


def openapi_to_jsonschema(node: Any, optional_nullable: bool = False) -> Any:
    """An OpenAPI 3.0 schema tree as JSON Schema draft 4 (``nullable`` made explicit).

    ``optional_nullable``: every property a schema does not require may also be ``null`` — for
    a description converted from Swagger 2.0, which cannot say ``nullable`` (Bitbucket's:
    Bitbucket sends ``"milestone": null``, ``"parent": null``…). A ``properties`` entry that
    is not a schema (a conversion slip such as ``properties: {type: object}``) is dropped."""
    def again(child: Any) -> Any:
        return openapi_to_jsonschema(child, optional_nullable)

    if isinstance(node, list):
        return [again(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: again(v) for k, v in node.items()
           if k not in ("nullable", "example", "examples", "discriminator", "xml", "properties")
           and not k.startswith("x-")}
    if isinstance(node.get("properties"), dict):
        required = set(node.get("required") or ())
        out["properties"] = {
            name: (_or_null(again(sub)) if optional_nullable and name not in required
                   else again(sub))
            for name, sub in node["properties"].items() if isinstance(sub, dict)}
    if "discriminator" in node and "oneOf" in out:  # the discriminator picks one branch
        out["anyOf"] = out.pop("oneOf")
    if node.get("nullable") is True:
        return _or_null(out)
    return out


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as the description spells it
    doc: dict[str, Any]

    @property
    def statuses(self) -> set[int]:
        # YAML reads an unquoted 200 as an int
        return {int(code) for code in self.doc.get("responses", {}) if str(code).isdigit()}


class Description:
    """One OpenAPI document: operations found by keyway's templates, response validators."""

    def __init__(self, name: str, document: dict[str, Any], prefix: str = "", *,
                 optional_nullable: bool = False,
                 formats: dict[str, Any] | None = None) -> None:
        self.name, self.document, self.prefix = name, document, prefix
        self._formats = formats
        self._optional_nullable = optional_nullable
        self._components = openapi_to_jsonschema(document.get("components", {}),
                                                 optional_nullable)
        self._paths = {_PARAM.sub("{}", path): path for path in document["paths"]}

    def operation(self, method: str, template: str) -> Operation:
        """The operation of ``"GET /repos/{owner}/{repo}"`` (parameter names may differ)."""
        key = _PARAM.sub("{}", self.prefix + template)
        path = self._paths.get(key)
        doc = self.document["paths"].get(path, {}).get(method.lower()) if path else None
        if doc is None:
            raise LookupError(f"{self.name} describes no {method} {template}")
        return Operation(method, path, doc)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def response_schema(self, op: Operation, status: int) -> dict[str, Any] | None:
        """The JSON schema documented for ``status`` (None: the answer has no JSON body)."""
        responses = op.doc.get("responses", {})
        answer = (responses.get(str(status)) or responses.get(status)
                  or responses.get("default"))
        if answer is None:
            raise AssertionError(f"{self.name} {op.method} {op.path}: {status} not documented")
        content = self._resolve(answer).get("content") or {}
        media = next((v for k, v in content.items() if "json" in k), None)
        return None if media is None or "schema" not in media else media["schema"]

    @functools.cache  # noqa: B019 - one Description per session; validators are reused
    def _validator(self, method: str, path: str, status: int) -> Any:
        op = Operation(method, path, self.document["paths"][path][method.lower()])
        schema = self.response_schema(op, status)
        if schema is None:
            return None
        root = {**openapi_to_jsonschema(schema, self._optional_nullable),
                "components": self._reachable(schema)}
        return jsonschema_rs.Draft4Validator(root, validate_formats=True, formats=self._formats)

    def _reachable(self, schema: Any) -> dict[str, Any]:
        """Only the converted components ``schema`` reaches (GitHub's are 13 MB)."""
        found: dict[str, dict[str, Any]] = {}
        todo = [schema]
        while todo:
            node = todo.pop()
            if isinstance(node, list):
                todo.extend(node)
            elif isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/components/"):
                    _, _, kind, name = ref.split("/", 3)
                    if name not in found.setdefault(kind, {}):
                        found[kind][name] = self._components[kind][name]
                        todo.append(self.document["components"][kind][name])
                todo.extend(v for k, v in node.items() if k != "$ref")
        return found

    def errors(self, op: Operation, status: int, body: Any) -> list[str]:
        """Why ``body`` breaks the documented response schema (empty: it conforms)."""
        validator = self._validator(op.method, op.path, status)
        if validator is None:  # the description documents no body schema for this answer
            return []
        return [f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"[:300]
                for e in _leaves(validator.iter_errors(body))]


def _leaves(errors: Any) -> list[Any]:
    """The errors, with an ``anyOf``/``oneOf`` failure replaced by its closest branch's errors
    (the one that is not the ``null`` of a nullable), so a message names the real cause."""
    out = []
    for error in errors:
        branches = [b for b in (getattr(error.kind, "context", None) or [])
                    if not any("of type \"null\"" in e.message for e in b)]
        out += _leaves(min(branches, key=len)) if branches else [error]
    return out


@functools.cache
def github() -> Description:
    return Description("@octokit/openapi api.github.com",
                       json.loads(require(GITHUB_REST).read_text()))


@functools.cache
def github_sdl() -> str:
    return require(GITHUB_GRAPHQL).read_text()


# Jira writes date-times as 2024-05-01T10:00:00.000+0000 (offset without a colon) while its
# description calls them RFC 3339 "date-time"; keyway parses what Jira sends.
_JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")


@functools.cache
def jira() -> Description:
    return Description("Jira Cloud platform REST v3", json.loads(require(JIRA).read_text()),
                       formats={"date-time": lambda text: bool(_JIRA_TIME.match(text))})


@functools.cache
def bitbucket() -> Description:
    # a safe loader; the C one when PyYAML has it (the file is 0.7 MB)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return Description("Bitbucket Cloud REST 2.0",
                       yaml.load(require(BITBUCKET).read_text(), Loader=loader),  # noqa: S506
                       optional_nullable=True)
