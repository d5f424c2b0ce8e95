"""Code ↔ infra: the Terraform in ``infra/`` grants exactly what the component policy table needs.

The HCL is parsed with python-hcl2 and the policy-derived inputs are read from
``infra/policy.auto.tfvars.json`` (and ``infra/indexes.auto.tfvars.json``); a small evaluator
expands every ``for_each`` (all providers enabled, operator variables at their defaults) into
concrete IAM grants ``(principal, target, role)``. The expected grants are written here from
the code (policy table, component table, secret names) — not from ``keyway.infra_export`` — and
must match exactly.

Every check is a function of the parsed model, so the mutation tests at the bottom can remove a
binding or add a role to a copy and prove the check notices.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from keyway import infra_export
from shared import policy, retention, topology
from shared.audit.chain import KEY_SECRET as AUDIT_KEY
from shared.components import COMPONENTS
from shared.crypto import channels, datakeys
from shared.providers import registry
from shared.vault.github_app import PRIVATE_KEY_SECRET as GITHUB_APP_KEY
from shared.webhooks.secrets import app_secret_name

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TFVARS = INFRA / "policy.auto.tfvars.json"
INDEX_TFVARS = INFRA / "indexes.auto.tfvars.json"

PUBLIC_FUNCTIONS = frozenset(
    ["api"] + [f"{kind}-{p}" for p in policy.PROVIDERS for kind in ("oauth", "webhook")]
)
PRIMITIVE = re.compile(r"\broles/(owner|editor|viewer)\b")
PUBSUB_AGENT = "service-agent:pubsub"
SCHEDULER_AGENT = "service-agent:cloudscheduler"
PUSH = "push"  # the Pub/Sub push identity (kw-pubsub-push)
BUILDER = "builder"  # the functions' build identity (kw-function-builder)
CONNECTION_SECRETS_ROLE = "google_project_iam_custom_role.connection_webhook_secrets"
NOTIFY_SECRETS_ROLE = "google_project_iam_custom_role.notify_secrets"
# Exactly what oauth-P (create, add a version) and vault-P (delete) do to a connection's secret.
CONNECTION_SECRET_PERMISSIONS = {"secretmanager.secrets.create", "secretmanager.versions.add",
                                 "secretmanager.secrets.delete"}
HOST_SECRETS_ROLE = "google_project_iam_custom_role.host_client_secrets"
# Exactly what the api does to a registered host's client secret: store it, delete it.
HOST_SECRET_PERMISSIONS = CONNECTION_SECRET_PERMISSIONS

# ---------------------------------------------------------------------------------------------
# Loading and evaluating the HCL


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _clean(v) for k, v in node.items()
                if k not in ("__is_block__", "__comments__", "__inline_comments__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return _unquote(node)


def load(infra: Path = INFRA) -> dict[str, Any]:
    """The parsed model: resources by type and name, locals, variable defaults, tfvars."""
    model: dict[str, Any] = {"resources": {}, "locals": {}, "variables": {}, "vars": {},
                             "validations": {}}
    for path in sorted(infra.glob("*.tf")):
        with path.open() as f:
            parsed = _clean(hcl2.load(f))
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    assert name not in model["resources"].get(rtype, {}), (rtype, name)
                    model["resources"].setdefault(rtype, {})[name] = body
        for block in parsed.get("locals", []):
            model["locals"].update(block)
        for block in parsed.get("variable", []):
            for name, body in block.items():
                model["variables"][name] = body.get("default")
                model["validations"][name] = body.get("validation", [])
    model["vars"] = {**json.loads(TFVARS.read_text()), **json.loads(INDEX_TFVARS.read_text())}
    return model


_INTERP = re.compile(r"\$\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_REF = re.compile(
    r"^([a-z0-9_]+)\.([a-z0-9_]+)(?:\[([^\]]+)\])?(?:\.[a-z0-9_\[\]0-9]+)?$")
_FOR = re.compile(
    r"^\{\s*for k, (?:v|f) in (var|local)\.([a-z_]+) : k => (?:v|f)(?: if (.+))?\s*\}$")


def _strip(expr: str) -> str:
    expr = expr.strip()
    if expr.startswith("${") and expr.endswith("}") and _INTERP.fullmatch(expr):
        return expr[2:-1].strip()
    return expr


def _map_of(model: dict[str, Any], expr: str) -> dict[str, Any]:
    """The map a ``for_each`` iterates: ``var.X``, ``local.X`` or a filtered ``for`` over one."""
    expr = _strip(expr)
    if expr.startswith("var."):
        return dict(model["vars"][expr[4:]])
    if expr.startswith("local."):
        target = model["locals"][expr[6:]]
        return dict(target) if isinstance(target, dict) else _map_of(model, target)
    if expr.startswith("toset(") and expr.endswith(")"):
        inner = _strip(expr[6:-1])
        items = model["locals"][inner[6:]] if inner.startswith("local.") else None
        assert isinstance(items, list), f"cannot evaluate for_each {expr!r}"
        return {_unquote(i): _unquote(i) for i in items}
    m = _FOR.match(expr)
    assert m, f"cannot evaluate for_each {expr!r}"
    source = _map_of(model, f"{m.group(1)}.{m.group(2)}")
    condition = m.group(3)
    return {k: v for k, v in source.items() if _keep(model, condition, v)}


def _keep(model: dict[str, Any], condition: str | None, v: dict[str, Any]) -> bool:
    if condition is None:
        return True
    condition = condition.strip()
    if condition == 'v.provider == "" || contains(local.enabled, v.provider)':
        return v["provider"] == "" or v["provider"] in model["variables"]["enabled_providers"]
    if condition == "v.public":
        return bool(v["public"])
    if condition == "!v.public":
        return not v["public"]
    m = re.fullmatch(r"contains\(keys\(local\.([a-z_]+)\), v\.([a-z_]+)\)", condition)
    assert m, f"cannot evaluate condition {condition!r}"
    return v[m.group(2)] in _map_of(model, f"local.{m.group(1)}")


def instances(model: dict[str, Any], rtype: str, name: str) -> Iterator[tuple[Any, Any]]:
    """(each.key, each.value) of every instance of one resource."""
    body = model["resources"][rtype][name]
    if "for_each" in body:
        yield from _map_of(model, body["for_each"]).items()
    elif "count" in body:
        m = re.fullmatch(r'var\.([a-z_]+) == "" \? 0 : 1', _strip(body["count"]))
        assert m, f"cannot evaluate count of {rtype}.{name}"
        if model["variables"][m.group(1)] not in ("", None):
            yield None, None
    else:
        yield None, None


def evaluate(model: dict[str, Any], expr: Any, key: Any, value: Any) -> Any:
    """Resolve an attribute: ``each.*`` substituted, references rendered as ``type.name[key]``."""
    if not isinstance(expr, str):
        return expr

    def one(inner: str) -> str:
        inner = inner.strip()
        if inner == "each.key":
            return str(key)
        if inner.startswith("each.value."):
            return str(value[inner[len("each.value."):]])
        if inner.startswith("var."):
            name, *path = inner[4:].split(".")
            found = model["vars"].get(name, model["variables"].get(name, f"<{name}>"))
            for part in path:
                found = found[part]
            return str(found)
        if len(inner) >= 2 and inner[0] == inner[-1] == '"':
            return inner[1:-1]
        if inner.startswith("local."):
            local, _, index = inner[6:].partition("[")
            target = model["locals"][local]
            if index:
                index = one(index.rstrip("]"))
                if isinstance(target, dict):
                    return evaluate(model, target[index], key, value)
                return f"local.{local}[{index}]"
            return evaluate(model, target, key, value)
        m = _REF.match(inner)
        if m:
            rtype, rname, index = m.groups()
            return f"{rtype}.{rname}" + (f"[{one(index)}]" if index else "")
        return f"<{inner}>"

    return _INTERP.sub(lambda m: one(m.group(1)), expr)


def _ref_key(ref: str, rtype: str, rname: str) -> str | None:
    m = re.fullmatch(re.escape(f"{rtype}.{rname}") + r"\[(.+)\]", ref)
    return m.group(1) if m else None


def principal(member: str) -> str:
    """A member as the checks name it: component account, ``push``, service agent, allUsers."""
    if member in ("allUsers", "allAuthenticatedUsers"):
        return member
    m = re.fullmatch(r"serviceAccount:google_service_account\.component\[(.+)\]", member)
    if m:
        return m.group(1)
    if member == "serviceAccount:google_service_account.push":
        return PUSH
    if member == "serviceAccount:google_service_account.builder":
        return BUILDER
    m = re.fullmatch(r"serviceAccount:service-.+@gcp-sa-([a-z]+)\.iam\.gserviceaccount\.com",
                     member)
    if m:
        return f"service-agent:{m.group(1)}"
    return f"other:{member}"


def _condition_target(model: dict[str, Any], body: dict[str, Any], key: Any, value: Any) -> str:
    conditions = body.get("condition") or []
    if not conditions:
        return "project"
    expression = evaluate(model, conditions[0]["expression"], key, value).replace("\\\"", "\"")
    m = re.fullmatch(r'resource\.name == "projects/[^/]+/databases/([^"]+)"', expression)
    if m:
        return f"database:{m.group(1)}"
    m = re.fullmatch(r'resource\.name\.startsWith\("projects/[^/]+/secrets/([^"]+)"\)', expression)
    if m:
        return f"secret-prefix:{m.group(1)}"
    m = re.fullmatch(r'resource\.type == "cloudresourcemanager\.googleapis\.com/Project" \|\| '
                     r'resource\.name\.startsWith\("projects/[^/]+/secrets/([^"]+)"\)', expression)
    if m:  # secrets.create is checked on the project; everything else on a prefixed secret
        return f"secret-create+prefix:{m.group(1)}"
    return f"project-if:{expression}"


def _target(model: dict[str, Any], rtype: str, body: dict[str, Any], key: Any, value: Any) -> str:
    ev = lambda attr: evaluate(model, body[attr], key, value)  # noqa: E731
    if rtype == "google_project_iam_member":
        return _condition_target(model, body, key, value)
    if rtype == "google_pubsub_topic_iam_member":
        ref = ev("topic")
        for rname in model["resources"]["google_pubsub_topic"]:
            k = _ref_key(ref, "google_pubsub_topic", rname)
            if k is not None:
                return f"topic:{_resource_name(model, 'google_pubsub_topic', rname, k)}"
        return f"topic:{ref}"
    if rtype == "google_pubsub_subscription_iam_member":
        ref = ev("subscription")
        for rname in model["resources"]["google_pubsub_subscription"]:
            k = _ref_key(ref, "google_pubsub_subscription", rname)
            if k is not None:
                name = _resource_name(model, "google_pubsub_subscription", rname, k)
                return f"subscription:{name}"
        return f"subscription:{ref}"
    if rtype == "google_secret_manager_secret_iam_member":
        k = _ref_key(ev("secret_id"), "google_secret_manager_secret", "keyway")
        return f"secret:{k}"
    if rtype == "google_kms_crypto_key_iam_member":
        ref = ev("crypto_key_id")
        k = _ref_key(ref, "google_kms_crypto_key", "component")
        if k is not None:
            return f"key:{k}"
        if ref == "google_kms_crypto_key.pubsub":
            return "key:pubsub"
        return f"key:{ref}"
    if rtype == "google_cloud_run_service_iam_member":
        ref = ev("service")
        m = re.fullmatch(r"local\.function_service\[(.+)\]", ref)
        return f"function:{m.group(1)}" if m else f"function:{ref}"
    if rtype == "google_artifact_registry_repository_iam_member":
        return f"repository:{ev('repository')}"
    if rtype == "google_storage_bucket_iam_member":
        return f"bucket:{ev('bucket')}"
    if rtype == "google_service_account_iam_member":
        ref = ev("service_account_id")
        return "account:push" if ref == "google_service_account.push" else f"account:{ref}"
    raise AssertionError(f"no target rule for {rtype}")


def _resource_name(model: dict[str, Any], rtype: str, rname: str, key: str) -> str:
    body = model["resources"][rtype][rname]
    value = dict(instances(model, rtype, rname)).get(key)
    assert value is not None, f"{rtype}.{rname}[{key}] does not exist"
    return evaluate(model, body["name"], key, value)


IAM_TYPES = frozenset({
    "google_project_iam_member", "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member", "google_secret_manager_secret_iam_member",
    "google_kms_crypto_key_iam_member", "google_cloud_run_service_iam_member",
    "google_service_account_iam_member", "google_artifact_registry_repository_iam_member",
    "google_storage_bucket_iam_member",
})


def grants(model: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every (principal, target, role) the Terraform grants."""
    out: set[tuple[str, str, str]] = set()
    for rtype, named in model["resources"].items():
        if not re.search(r"_iam_(member|binding|policy)$", rtype):
            continue
        assert rtype in IAM_TYPES, f"{rtype}: IAM resource type the checks do not know"
        for rname, body in named.items():
            for key, value in instances(model, rtype, rname):
                member = principal(evaluate(model, body["member"], key, value))
                role = evaluate(model, body["role"], key, value)
                out.add((member, _target(model, rtype, body, key, value), role))
    return out


# ---------------------------------------------------------------------------------------------
# What the code says


def account_of(component: str) -> str:
    kind, _, p = component.partition("-")
    return f"token-{p}" if kind in ("vault", "oauth") and p else component


def expected_secret_grants() -> set[tuple[str, str, str]]:
    """Secret access per account, as DESIGN.md and the modules that read secrets need it."""
    read = ("roles/secretmanager.secretAccessor", "roles/secretmanager.viewer")
    out: set[tuple[str, str, str]] = set()

    def give(account: str, target: str, roles: tuple[str, ...] = read) -> None:
        out.update((account, target, r) for r in roles)

    for p in policy.PROVIDERS:
        token = f"token-{p}"
        give(token, f"secret:{datakeys.secret_name(f'vault-{p}')}",
             (*read, "roles/secretmanager.secretVersionAdder"))
        for kind in ("fetch", "act"):
            name = channels.secret_name(f"vault-{p}", f"{kind}-{p}")
            give(token, f"secret:{name}")
            give(f"{kind}-{p}", f"secret:{name}")
        give(token, f"secret:{p}-client-secret")
        give(token, f"secret:{AUDIT_KEY}")
        if p == "github":  # the App's key and its own OAuth client's secret
            give(token, f"secret:{GITHUB_APP_KEY}")
            give(token, "secret:github-app-client-secret")
        give(f"webhook-{p}", f"secret:{app_secret_name(p)}")
        give(f"webhook-{p}", f"secret:{app_secret_name(p)}-previous")
        give(f"webhook-{p}", "secret-prefix:webhook-secret-")
        reg = registry.get(p).webhook_registration
        if reg is not None and reg.kind != "site":  # keyway registers its hooks with their
            give(f"fetch-{p}", "secret-prefix:webhook-secret-")  # own secrets: fetch-P signs
            give(token, "secret-create+prefix:webhook-secret-", (CONNECTION_SECRETS_ROLE,))  # them
            # up, the token component creates the secret at connect and deletes it later
        if p in ("github", "gitlab"):  # registered self-hosted hosts' client secrets: only
            give(token, f"secret-prefix:host-{p}-")  # this provider's token component reads
        if p == "jira":  # Jira signs its dynamic webhooks with the OAuth client secret
            give(f"webhook-{p}", f"secret:{p}-client-secret")
            give(f"webhook-{p}", f"secret:{p}-client-secret-previous")
    # Notification signing secrets: the api makes and deletes them, notify signs with them.
    give("notify", "secret-prefix:notify-secret-")
    give("api", "secret-create+prefix:notify-secret-", (NOTIFY_SECRETS_ROLE,))
    give("api", "secret-create+prefix:host-", (HOST_SECRETS_ROLE,))  # registers hosts
    return out


def expected_grants() -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for topic, component, role in policy.iam_bindings():
        who = SCHEDULER_AGENT if component == policy.CLOUD_SCHEDULER else account_of(component)
        if role == "roles/pubsub.subscriber":
            out.add((who, f"subscription:{policy.subscription_name(topic)}", role))
        else:
            out.add((who, f"topic:{topic}", role))
    for topic, component, role in policy.outlet_bindings():  # keyway-events: notify only
        out.add((account_of(component), f"topic:{topic}", role))
    for topic in policy.ROUTES:  # dead-lettering by the Pub/Sub service agent
        out.add((PUBSUB_AGENT, f"topic:{policy.dead_letter_topic(topic)}",
                 "roles/pubsub.publisher"))
        out.add((PUBSUB_AGENT, f"subscription:{policy.subscription_name(topic)}",
                 "roles/pubsub.subscriber"))
    out.add((PUBSUB_AGENT, "account:push", "roles/iam.serviceAccountTokenCreator"))
    out.add((PUBSUB_AGENT, "key:pubsub", "roles/cloudkms.cryptoKeyEncrypterDecrypter"))
    # The build account: its sources, its image repository, its build logs.
    out.add((BUILDER, "bucket:google_storage_bucket.sources", "roles/storage.objectViewer"))
    out.add((BUILDER, "repository:google_artifact_registry_repository.functions",
             "roles/artifactregistry.writer"))
    out.add((BUILDER, "project", "roles/logging.logWriter"))
    out |= expected_secret_grants()
    for p in policy.PROVIDERS:
        out.add((f"token-{p}", f"key:vault-{p}", "roles/cloudkms.cryptoKeyEncrypterDecrypter"))
        out.add((f"token-{p}", "database:vault", "roles/datastore.user"))
    for name in COMPONENTS:
        out.add((account_of(name), "database:(default)", "roles/datastore.user"))
        invoker = "allUsers" if name in PUBLIC_FUNCTIONS else PUSH
        out.add((invoker, f"function:{name}", "roles/run.invoker"))
    return out


# ---------------------------------------------------------------------------------------------
# The checks (each raises AssertionError naming what is wrong)


def check_grants(model: dict[str, Any]) -> None:
    actual, expected = grants(model), expected_grants()
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    assert not missing and not extra, f"missing grants: {missing}; extra grants: {extra}"


def _functions(model: dict[str, Any]) -> dict[str, tuple[dict[str, Any], Any, Any]]:
    out = {}
    for rname, body in model["resources"]["google_cloudfunctions2_function"].items():
        for key, value in instances(model, "google_cloudfunctions2_function", rname):
            name = evaluate(model, body["name"], key, value)
            assert name not in out, f"function {name} declared twice"
            out[name] = (body, key, value)
    return out


def check_functions(model: dict[str, Any]) -> None:
    functions = _functions(model)
    assert set(functions) == set(COMPONENTS), (
        f"deployed {sorted(functions)} but the component table has {sorted(COMPONENTS)}")
    for name, (body, key, value) in functions.items():
        build = body["build_config"][0]
        service = body["service_config"][0]
        ev = lambda expr, k=key, v=value: evaluate(model, expr, k, v)  # noqa: E731
        assert ev(build["runtime"]) == "python311", name
        assert ev(build["entry_point"]) == COMPONENTS[name].entry_point, name
        assert ev(build.get("service_account", "")) == "google_service_account.builder", name
        assert ev(build.get("docker_repository", "")) == (
            "google_artifact_registry_repository.functions"), name
        assert ev(service["service_account_email"]) == (
            f"google_service_account.component[{account_of(name)}]"), name
        ingress = ev(service["ingress_settings"])
        want = "ALLOW_ALL" if name in PUBLIC_FUNCTIONS else "ALLOW_INTERNAL_ONLY"
        assert ingress == want, f"{name}: ingress {ingress}, want {want}"
        assert "event_trigger" not in body, f"{name}: delivery is by the push subscription"


def check_topics(model: dict[str, Any]) -> None:
    topics = {_resource_name(model, "google_pubsub_topic", "topic", k): k
              for k, _ in instances(model, "google_pubsub_topic", "topic")}
    assert set(topics) == set(policy.ROUTES), f"topics {sorted(topics)}"
    dead = {evaluate(model, model["resources"]["google_pubsub_topic"]["dead_letter"]["name"], k, v)
            for k, v in instances(model, "google_pubsub_topic", "dead_letter")}
    assert dead == {policy.dead_letter_topic(t) for t in policy.ROUTES}, "dead-letter topics"
    specs = {s.name: s for s in topology.subscription_specs()}
    body = model["resources"]["google_pubsub_subscription"]["subscription"]
    seen = set()
    for key, value in instances(model, "google_pubsub_subscription", "subscription"):
        ev = lambda expr, k=key, v=value: evaluate(model, expr, k, v)  # noqa: E731
        name = ev(body["name"])
        spec = specs[name]
        seen.add(name)
        assert ev(body["topic"]) == f"google_pubsub_topic.topic[{spec.topic}]", name
        dlp = body["dead_letter_policy"][0]
        assert ev(dlp["dead_letter_topic"]) == f"google_pubsub_topic.dead_letter[{spec.topic}]"
        assert int(ev(dlp["max_delivery_attempts"])) == spec.max_attempts, name
        assert int(ev(body["ack_deadline_seconds"])) == spec.ack_deadline, name
        retry = body["retry_policy"][0]
        assert ev(retry["minimum_backoff"]) == f"{int(spec.min_backoff)}s", name
        assert ev(retry["maximum_backoff"]) == f"{int(spec.max_backoff)}s", name
        subscriber = policy.ROUTES[spec.topic].subscriber
        push = body["push_config"][0]
        assert ev(push["push_endpoint"]).startswith(f"local.function_uri[{subscriber}]"), name
        assert ev(push["push_endpoint"]).endswith(f"/topics/{spec.topic}"), name
    assert seen == set(specs), f"subscriptions {sorted(seen)}"
    hold = model["resources"]["google_pubsub_subscription"]["hold"]
    holds = {evaluate(model, hold["name"], k, v)
             for k, v in instances(model, "google_pubsub_subscription", "hold")}
    assert holds == {f"{policy.dead_letter_topic(t)}-hold" for t in policy.ROUTES}, "hold subs"
    for component in COMPONENTS:  # every topic the code publishes to exists
        assert set(policy.topics_published_by(component)) <= set(topics), component


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def check_no_primitive_roles(model: dict[str, Any]) -> None:
    bad = sorted({s for s in _strings(model) if PRIMITIVE.search(s)})
    assert not bad, f"primitive roles: {bad}"


def check_public(model: dict[str, Any]) -> None:
    public = {t for who, t, _ in grants(model) if who in ("allUsers", "allAuthenticatedUsers")}
    assert public <= {f"function:{f}" for f in PUBLIC_FUNCTIONS}, f"public: {sorted(public)}"
    for name, (body, key, value) in _functions(model).items():
        ingress = evaluate(model, body["service_config"][0]["ingress_settings"], key, value)
        assert ingress == "ALLOW_INTERNAL_ONLY" or name in PUBLIC_FUNCTIONS, name
    for bucket in model["resources"].get("google_storage_bucket", {}).values():
        assert bucket.get("public_access_prevention") == "enforced"


DEPLOYER = "projects/${var.project}/serviceAccounts/${var.deployer_service_account}"
DEFAULT_ACCOUNTS = ("@cloudbuild.gserviceaccount.com", "-compute@developer.gserviceaccount.com")


def check_build_identity(model: dict[str, Any]) -> None:
    """The deploy trigger runs as the dedicated deployer account, never Cloud Build's default:
    it names ``var.deployer_service_account`` explicitly, exists only when that is set, and
    the variable refuses the default build and compute accounts."""
    for name, trigger in model["resources"].get("google_cloudbuild_trigger", {}).items():
        account = trigger.get("service_account", "")
        assert account == DEPLOYER, f"trigger {name} has no explicit service account"
        assert 'var.deployer_service_account == ""' in trigger.get("count", ""), (
            f"trigger {name} must not exist without a deployer account")
    conditions = " ".join(str(v.get("condition")) for v in
                          model["validations"].get("deployer_service_account", []))
    assert all(f'"{suffix}"' in conditions for suffix in DEFAULT_ACCOUNTS), (
        "deployer_service_account must refuse the default build and compute accounts")


CHECKS: list[Callable[[dict[str, Any]], None]] = [
    check_grants, check_functions, check_topics, check_no_primitive_roles, check_public,
    check_build_identity,
]

# ---------------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    return load()


@pytest.fixture
def model(parsed: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(parsed)


def test_the_policy_tfvars_file_is_current():
    assert TFVARS.read_text() == infra_export.render(), (
        "infra/policy.auto.tfvars.json is stale: run python -m keyway.infra_export")


def test_the_index_tfvars_file_is_current():
    assert INDEX_TFVARS.read_text() == infra_export.render_indexes(), (
        "infra/indexes.auto.tfvars.json is stale: run python -m keyway.infra_export")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_infra_matches_the_code(check, model):
    check(model)


def test_every_component_has_its_own_account_except_the_token_component(model):
    accounts = {k: v for k, v in instances(model, "google_service_account", "component")}
    assert set(accounts) == {account_of(c) for c in COMPONENTS}
    for p in policy.PROVIDERS:
        assert set(accounts[f"token-{p}"]["components"]) == {f"vault-{p}", f"oauth-{p}"}


def test_kms_keys_rotate_and_each_is_used_only_by_its_component(model):
    keys = dict(instances(model, "google_kms_crypto_key", "component"))
    assert set(keys) == {f"vault-{p}" for p in policy.PROVIDERS}
    for rname, body in model["resources"]["google_kms_crypto_key"].items():
        assert body["purpose"] == "ENCRYPT_DECRYPT", rname
        period = evaluate(model, body["rotation_period"], None, None)
        assert re.fullmatch(r"\d+s", period) and int(period[:-1]) <= 90 * 86400, rname
    kms = {(who, t) for who, t, role in grants(model) if t.startswith("key:vault-")}
    assert kms == {(f"token-{p}", f"key:vault-{p}") for p in policy.PROVIDERS}


def test_the_connection_secret_role_can_write_those_secrets_and_never_read_one(model):
    role = model["resources"]["google_project_iam_custom_role"]["connection_webhook_secrets"]
    permissions = role["permissions"]
    if not isinstance(permissions, list):  # taken from the policy-derived inputs
        assert _strip(permissions) == "var.kw_connection_secret_permissions", permissions
        permissions = model["vars"]["kw_connection_secret_permissions"]
    assert set(permissions) == CONNECTION_SECRET_PERMISSIONS
    assert not [p for p in permissions if p.endswith((".access", ".setIamPolicy", ".list"))]
    holders = {(who, target) for who, target, r in grants(model) if r == CONNECTION_SECRETS_ROLE}
    assert holders == {(f"token-{p}", "secret-create+prefix:webhook-secret-")
                       for p in ("github", "gitlab")}


def test_the_api_may_write_host_client_secrets_and_never_read_one(model):
    role = model["resources"]["google_project_iam_custom_role"]["host_client_secrets"]
    permissions = role["permissions"]
    if not isinstance(permissions, list):  # taken from the policy-derived inputs
        assert _strip(permissions) == "var.kw_host_secret_permissions", permissions
        permissions = model["vars"]["kw_host_secret_permissions"]
    assert set(permissions) == HOST_SECRET_PERMISSIONS
    assert not [p for p in permissions if p.endswith((".access", ".setIamPolicy", ".list"))]
    holders = {(who, target) for who, target, r in grants(model) if r == HOST_SECRETS_ROLE}
    assert holders == {("api", "secret-create+prefix:host-")}
    readers = {who for who, target, _ in grants(model) if target.startswith("secret-prefix:host-")}
    assert readers == {"token-github", "token-gitlab"}


def test_a_host_secret_role_that_reads_fails(model):
    model["vars"]["kw_host_secret_permissions"].append("secretmanager.versions.access")
    with pytest.raises(AssertionError):
        test_the_api_may_write_host_client_secrets_and_never_read_one(model)


def test_another_provider_reading_a_hosts_client_secret_fails(model):
    model["vars"]["kw_secret_prefix_iam"]["host-github-|token-gitlab|x"] = {
        "prefix": "host-github-", "account": "token-gitlab",
        "role": "roles/secretmanager.secretAccessor", "provider": "gitlab"}
    assert "('token-gitlab', 'secret-prefix:host-github-'" in _fails(model, check_grants)


def test_a_broader_connection_secret_role_fails(model):
    model["vars"]["kw_connection_secret_permissions"].append(
        "secretmanager.versions.access")
    with pytest.raises(AssertionError):
        test_the_connection_secret_role_can_write_those_secrets_and_never_read_one(model)


def test_removing_the_fetchers_read_of_connection_secrets_fails(model):
    del model["vars"]["kw_secret_prefix_iam"][
        "webhook-secret-|fetch-github|roles/secretmanager.secretAccessor"]
    assert "('fetch-github', 'secret-prefix:webhook-secret-'" in _fails(model, check_grants)


def test_a_connection_secret_writer_for_another_account_fails(model):
    model["vars"]["kw_secret_writer_iam"]["webhook-secret-|fetch-github"] = {
        "prefix": "webhook-secret-", "account": "fetch-github", "provider": "github"}
    assert "extra grants: [('fetch-github', 'secret-create+prefix:webhook-secret-', " \
           f"'{CONNECTION_SECRETS_ROLE}')" in _fails(model, check_grants)


def test_only_notify_publishes_keyway_events_and_only_notify_reads_notification_secrets(model):
    granted = grants(model)
    outlet = {(who, role) for who, target, role in granted if target == "topic:keyway-events"}
    assert outlet == {("notify", "roles/pubsub.publisher")}
    topics = {evaluate(model, model["resources"]["google_pubsub_topic"]["outlet"]["name"], k, v)
              for k, v in instances(model, "google_pubsub_topic", "outlet")}
    assert topics == set(policy.OUTLETS) == {"keyway-events"}
    assert not [k for k, _ in instances(model, "google_pubsub_subscription", "subscription")
                if k in policy.OUTLETS], "keyway subscribes to nothing on an outlet"
    readers = {who for who, target, role in granted if target == "secret-prefix:notify-secret-"}
    assert readers == {"notify"}
    writers = {(who, role) for who, target, role in granted
               if target == "secret-create+prefix:notify-secret-"}
    assert writers == {("api", NOTIFY_SECRETS_ROLE)}
    role = model["resources"]["google_project_iam_custom_role"]["notify_secrets"]
    assert _strip(role["permissions"]) == "var.kw_connection_secret_permissions"


def test_another_keyway_events_publisher_fails(model):
    model["vars"]["kw_outlet_iam"]["keyway-events|api"] = {
        "topic": "keyway-events", "account": "api", "role": "roles/pubsub.publisher",
        "provider": ""}
    assert "extra grants: [('api', 'topic:keyway-events'" in _fails(model, check_grants)


def test_the_api_reading_notification_secrets_fails(model):
    model["vars"]["kw_secret_prefix_iam"][
        "notify-secret-|api|roles/secretmanager.secretAccessor"] = {
        "prefix": "notify-secret-", "account": "api",
        "role": "roles/secretmanager.secretAccessor", "provider": ""}
    assert "('api', 'secret-prefix:notify-secret-'" in _fails(model, check_grants)


def test_firestore_databases_have_pitr_backups_ttl_and_protection(model):
    dbs = model["resources"]["google_firestore_database"]["db"]
    assert set(_map_of(model, dbs["for_each"])) == {"(default)", "vault"}
    assert dbs["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert dbs["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    schedule = model["resources"]["google_firestore_backup_schedule"]["daily"]
    assert "daily_recurrence" in schedule
    ttl = model["resources"]["google_firestore_field"]["ttl"]
    collections = _map_of(model, ttl["for_each"])
    assert set(collections) == {"webhook_deliveries", "envelope_nonces", "oauth_states",
                                "notification_outbox", "notification_deliveries",
                                "notification_outlet"}
    assert ttl["field"] == "${each.value.field}" and ttl["collection"] == "${each.key}"
    assert {c["field"] for c in collections.values()} == {retention.TTL_FIELD}
    assert {c["database"] for c in collections.values()} == {"(default)"}
    assert "ttl_config" in ttl


def test_the_scheduler_job_publishes_refresh_ticks_as_cloud_scheduler(model):
    job = model["resources"]["google_cloud_scheduler_job"]["refresh_tick"]
    target = job["pubsub_target"][0]
    assert evaluate(model, target["topic_name"], None, None) == (
        "google_pubsub_topic.topic[refresh-ticks]")
    assert target["attributes"] == {"type": "refresh.tick", "version": "1",
                                    "sender": policy.CLOUD_SCHEDULER}
    policy.check_publish(policy.CLOUD_SCHEDULER, "refresh-ticks", "refresh.tick")


def test_only_the_apis_account_may_publish_connection_control(model):
    """A disconnect is the api's alone: on connection-control-P the Terraform grants publish to
    the api's service account and nobody else, while every syncer may publish sync requests."""
    granted = grants(model)
    for p in policy.PROVIDERS:
        control = {who for who, target, role in granted if role == "roles/pubsub.publisher"
                   and target == f"topic:connection-control-{p}"}
        assert control == {"api"}, (p, sorted(control))
        exported = {row["account"] for row in infra_export.export()["kw_topic_iam"].values()
                    if row["topic"] == f"connection-control-{p}"}
        assert exported == {"api"}
        syncers = {who for who, target, role in granted
                   if target == f"topic:sync-requests-{p}" and role == "roles/pubsub.publisher"}
        assert {"scheduler", "ingest", f"fetch-{p}", f"token-{p}"} <= syncers
        subscription = f"subscription:connection-control-{p}-to-vault-{p}"
        assert (f"token-{p}", subscription, "roles/pubsub.subscriber") in granted


def test_a_syncer_granted_publish_on_connection_control_fails(model):
    model["vars"]["kw_topic_iam"]["connection-control-github|scheduler|roles/pubsub.publisher"] = {
        "topic": "connection-control-github", "account": "scheduler",
        "role": "roles/pubsub.publisher", "provider": "github"}
    assert "extra grants: [('scheduler', 'topic:connection-control-github'" in _fails(
        model, check_grants)


def test_functions_get_the_gcp_configuration(model):
    env = model["locals"]["common_env"]
    text = json.dumps(env)
    for name in ("KEYWAY_BACKEND", "KEYWAY_PROJECT", "KEYWAY_PUBLIC_URL", "KEYWAY_FRONTEND_URL",
                 "KEYWAY_AUTH_ISSUER", "KEYWAY_AUTH_AUDIENCE", "KEYWAY_KMS_KEY_RING",
                 "KEYWAY_KMS_LOCATION", "KEYWAY_VAULT_DATABASE", "KEYWAY_BUSINESS_DATABASE"):
        assert name in text, name
    assert re.search(r'KEYWAY_BACKEND = \\+"gcp', text), text


# Mutations: a copy with one binding removed or one role added must fail.


def _fails(model: dict[str, Any], check: Callable[[dict[str, Any]], None]) -> str:
    with pytest.raises(AssertionError) as e:
        check(model)
    return str(e.value)


def test_removing_a_publisher_binding_fails(model):
    key = "sync-requests-github|api|roles/pubsub.publisher"
    del model["vars"]["kw_topic_iam"][key]
    assert "missing grants: [('api', 'topic:sync-requests-github'" in _fails(model, check_grants)


def test_removing_a_subscriber_binding_fails(model):
    del model["vars"]["kw_subscription_iam"]["events-jira-to-ingest|ingest"]
    assert "subscription:events-jira-to-ingest" in _fails(model, check_grants)


def test_removing_a_functions_kms_binding_resource_fails(model):
    del model["resources"]["google_kms_crypto_key_iam_member"]["component"]
    assert "key:vault-github" in _fails(model, check_grants)


def test_removing_a_functions_invoker_binding_fails(model):
    del model["resources"]["google_cloud_run_service_iam_member"]["push"]
    assert "function:vault-jira" in _fails(model, check_grants)


def test_an_extra_publisher_fails(model):
    model["vars"]["kw_topic_iam"]["fetch-jobs-github|api|roles/pubsub.publisher"] = {
        "topic": "fetch-jobs-github", "account": "api", "role": "roles/pubsub.publisher",
        "provider": ""}
    assert "extra grants: [('api', 'topic:fetch-jobs-github'" in _fails(model, check_grants)


def test_an_extra_secret_reader_fails(model):
    model["vars"]["kw_secret_iam"]["audit-chain-key|api|roles/secretmanager.secretAccessor"] = {
        "secret_id": "audit-chain-key", "account": "api",
        "role": "roles/secretmanager.secretAccessor", "provider": ""}
    assert "('api', 'secret:audit-chain-key'" in _fails(model, check_grants)


def test_another_components_key_fails(model):
    model["vars"]["kw_kms_iam"]["vault-github|token-gitlab"] = {
        "key": "vault-github", "account": "token-gitlab",
        "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter", "provider": "gitlab"}
    assert "('token-gitlab', 'key:vault-github'" in _fails(model, check_grants)


def test_the_vault_database_for_another_component_fails(model):
    model["vars"]["kw_database_iam"]["fetch-github|vault"] = {
        "account": "fetch-github", "database": "vault", "role": "roles/datastore.user",
        "provider": "github"}
    assert "('fetch-github', 'database:vault'" in _fails(model, check_grants)


def test_an_extra_project_role_fails(model):
    model["resources"]["google_project_iam_member"]["extra"] = {
        "project": "${var.project}", "role": "roles/pubsub.admin",
        "member": "serviceAccount:${google_service_account.component[\"ingest\"].email}"}
    model["resources"]["google_project_iam_member"]["extra"]["member"] = (
        "serviceAccount:${google_service_account.component[each.key].email}")
    model["resources"]["google_project_iam_member"]["extra"]["for_each"] = "${toset(local.x)}"
    model["locals"]["x"] = ["ingest"]
    assert "('ingest', 'project', 'roles/pubsub.admin')" in _fails(model, check_grants)


def test_a_primitive_role_fails(model):
    model["resources"]["google_project_iam_member"]["owner"] = {
        "project": "${var.project}", "role": "roles/editor",
        "member": "serviceAccount:${google_service_account.push.email}"}
    assert "roles/editor" in _fails(model, check_no_primitive_roles)
    assert "roles/editor" in _fails(model, check_grants)


def test_an_unknown_iam_resource_type_fails(model):
    model["resources"]["google_cloudfunctions2_function_iam_member"] = {"x": {
        "role": "roles/cloudfunctions.invoker", "member": "allUsers"}}
    assert "IAM resource type" in _fails(model, check_grants)


def test_making_an_internal_function_public_fails(model):
    model["vars"]["kw_components"]["vault-github"]["public"] = True
    _fails(model, check_public)
    _fails(model, check_functions)


def test_dropping_a_function_fails(model):
    del model["vars"]["kw_components"]["ingest"]
    assert "deployed" in _fails(model, check_functions)


def test_dropping_a_dead_letter_fails(model):
    model["resources"]["google_pubsub_subscription"]["subscription"]["dead_letter_policy"] = [
        {"dead_letter_topic": "${google_pubsub_topic.topic[each.key].id}",
         "max_delivery_attempts": 5}]
    _fails(model, check_topics)


def test_cloud_build_runs_every_stage_and_deploys_what_it_packaged(model):
    text = (ROOT / "cloudbuild.yaml").read_text()
    ids = re.findall(r"^  - id: ([a-z]+)$", text, flags=re.M)
    assert ids == ["install", "lint", "test", "package", "deploy"]
    assert "python -m keyway.package dist" in text and '-var="source_dir=../dist"' in text
    assert "python -m keyway.infra_export --check" in text
    assert "checkov -d infra --quiet --compact" in text
    assert "bash .ci/run" in text  # make test, emulators included, under CI=true
    trigger = model["resources"]["google_cloudbuild_trigger"]["deploy"]
    assert trigger["filename"] == "cloudbuild.yaml"
    declared = set(re.findall(r"^  (_[A-Z_]+):", text, flags=re.M))
    assert set(trigger["substitutions"]) <= declared


def test_a_provider_left_out_gets_no_function_topic_key_secret_or_grant(model):
    model["variables"]["enabled_providers"] = ["github"]
    others = ("gitlab", "bitbucket", "jira")
    assert not [f for f in _functions(model) if f.endswith(others)]
    assert not [g for g in grants(model) if any(o in f"{g[0]} {g[1]}" for o in others)]
    expected = {g for g in expected_grants()
                if not any(o in f"{g[0]} {g[1]}" for o in others)}
    assert grants(model) == expected


def test_building_as_the_default_build_account_fails(model):
    for body in model["resources"]["google_cloudfunctions2_function"].values():
        del body["build_config"][0]["service_account"]
    _fails(model, check_functions)


def test_a_deploy_trigger_without_an_explicit_service_account_fails(model):
    """Without ``service_account`` Cloud Build runs the trigger as its default account."""
    del model["resources"]["google_cloudbuild_trigger"]["deploy"]["service_account"]
    assert "no explicit service account" in _fails(model, check_build_identity)


def test_a_deploy_trigger_without_the_deployer_condition_or_validation_fails(model):
    model["resources"]["google_cloudbuild_trigger"]["deploy"]["count"] = (
        '${var.github_owner == "" ? 0 : 1}')
    _fails(model, check_build_identity)
    model = load()
    model["validations"]["deployer_service_account"] = []
    assert "default build" in _fails(model, check_build_identity)


def test_an_extra_role_for_the_build_account_fails(model):
    model["resources"]["google_project_iam_member"]["builder_admin"] = {
        "project": "${var.project}", "role": "roles/artifactregistry.admin",
        "member": "serviceAccount:${google_service_account.builder.email}"}
    assert "('builder', 'project', 'roles/artifactregistry.admin')" in _fails(model, check_grants)


def test_a_writer_condition_that_cannot_admit_secret_creation_fails(model):
    """secrets.create is checked on the project, where a name-prefix-only condition is false:
    such a binding could never create a connection's secret."""
    body = model["resources"]["google_project_iam_member"]["secret_prefix_writer"]
    expression = body["condition"][0]["expression"]
    body["condition"][0]["expression"] = expression.split(" || ", 1)[1]
    assert "secret-prefix:webhook-secret-" in _fails(model, check_grants)
