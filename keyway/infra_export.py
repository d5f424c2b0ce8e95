"""Export the component policy table and the Firestore indexes as Terraform input.

    python -m keyway.infra_export            → rewrite infra/policy.auto.tfvars.json and
                                               infra/indexes.auto.tfvars.json
    python -m keyway.infra_export --check    → exit 1 if a committed file is stale

Every IAM binding between components in ``infra/`` iterates over a map in this file, so the
Terraform grants are derived from the same table the runtime checks (DESIGN.md promise 7):
topic publishers and subscribers from :func:`shared.policy.iam_bindings`, the function list from
:data:`shared.components.COMPONENTS`, secret names from the modules that read them, and the
collections with a Firestore TTL policy from the modules that write them.
``tests/unit/test_infra.py`` fails when the committed file differs from :func:`export`.
The composite indexes of :data:`shared.indexes.INDEXES` go to their own file
(:func:`export_indexes`), one ``google_firestore_index`` each in ``infra/firestore.tf``.

Service accounts: one per component, except that ``vault-P`` and ``oauth-P`` are one token
component and share the account ``token-P`` (same keys, same vault database).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared import policy, retention, topology
from shared.audit.chain import KEY_SECRET as AUDIT_KEY_SECRET
from shared.components import COMPONENTS
from shared.crypto import channels, datakeys, replay
from shared.hosts import registry as hosts
from shared.indexes import INDEXES
from shared.notify import deliver as notify_deliver
from shared.notify import events as notify_events
from shared.notify import subscriptions as notify_subscriptions
from shared.oauth import state as oauth_state
from shared.providers import registry
from shared.vault.github_app import PRIVATE_KEY_SECRET as GITHUB_APP_KEY_SECRET
from shared.webhooks import deliveries
from shared.webhooks.hooks import uses_connection_secret
from shared.webhooks.secrets import PREVIOUS_SUFFIX, app_secret_name

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "infra" / "policy.auto.tfvars.json"
INDEXES_TARGET = ROOT / "infra" / "indexes.auto.tfvars.json"

ACCESSOR = "roles/secretmanager.secretAccessor"
# roles/secretmanager.viewer: versions.list, for the adapter's "newest enabled version" fallback.
SECRET_VIEWER = "roles/secretmanager.viewer"  # noqa: S105 - a role name, not a value
VERSION_ADDER = "roles/secretmanager.secretVersionAdder"
PUBLISHER = "roles/pubsub.publisher"
SUBSCRIBER = "roles/pubsub.subscriber"
KMS_USER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
DATASTORE_USER = "roles/datastore.user"
#: Per-connection webhook secrets (``webhook-secret-<connection>``) are created per connection,
#: so every grant on them is on a name-prefix IAM condition: ``webhook-P`` (verifies) and, for
#: providers that register hooks, ``fetch-P`` (registers them) read them and the token component
#: (``oauth-P`` creates one at connect, ``vault-P`` deletes it on disconnect) writes them through
#: a custom role with exactly
#: :data:`CONNECTION_SECRET_PERMISSIONS` — no predefined role has create and delete without
#: also reading every secret (``roles/secretmanager.admin``).
CONNECTION_WEBHOOK_PREFIX = "webhook-secret-"
CONNECTION_SECRET_READERS = ("webhook", "fetch")
CONNECTION_SECRET_PERMISSIONS = ("secretmanager.secrets.create", "secretmanager.secrets.delete",
                                 "secretmanager.versions.add")
#: Registered self-hosted hosts' OAuth client secrets (``host-<provider>-<hash>-client-secret``,
#: :mod:`shared.hosts.registry`) are made per host at registration: the ``api`` creates, adds
#: versions to and deletes them (custom role with :data:`HOST_SECRET_PERMISSIONS`, no read) on
#: the ``host-`` prefix, and only ``token-P`` reads them, on its own provider's ``host-P-``.
HOST_SECRET_WRITER = "api"  # noqa: S105 - a component name, not a value
HOST_SECRET_PERMISSIONS = ("secretmanager.secrets.create", "secretmanager.secrets.delete",
                           "secretmanager.versions.add")
#: Subscription signing secrets (``notify-secret-<subscription>``): the api creates one per
#: subscription and deletes it with the subscription, through its own custom role with the
#: same three permissions (it never reads one); ``notify`` reads them to sign deliveries.
NOTIFY_SECRET_PREFIX = notify_subscriptions.SECRET_PREFIX
NOTIFY_SECRET_WRITER, NOTIFY_SECRET_READER = "api", "notify"
#: Firestore databases by role.
BUSINESS_DB, VAULT_DB = "(default)", "vault"
#: Business-store collections whose documents carry the TTL timestamp (shared.retention).
TTL_COLLECTIONS = (deliveries.COLLECTION, replay.COLLECTION, oauth_state.COLLECTION,
                   notify_events.COLLECTION, notify_deliver.DELIVERIES,
                   notify_deliver.OUTLET_MARKS)
#: Publishers in the policy table that are not keyway components.
EXTERNAL_PUBLISHERS = frozenset({policy.CLOUD_SCHEDULER})


def account_for(component: str) -> str:
    """The service account (logical name) a component runs as."""
    kind, _, provider = component.partition("-")
    if provider and kind in ("vault", "oauth"):
        return f"token-{provider}"
    return component


def _provider_of(name: str) -> str:
    for p in policy.PROVIDERS:
        if name.endswith(f"-{p}") or name.startswith(f"{p}-") or f"-{p}-" in name:
            return p
    return ""


def secret_grants() -> dict[str, dict[str, tuple[str, ...]]]:
    """account → secret → roles. The only secret access any component has."""
    grants: dict[str, dict[str, tuple[str, ...]]] = {}
    read = (ACCESSOR, SECRET_VIEWER)
    for p in policy.PROVIDERS:
        vault, token = f"vault-{p}", f"token-{p}"
        g = grants.setdefault(token, {})
        g[datakeys.secret_name(vault)] = (*read, VERSION_ADDER)  # data keys are made lazily
        for kind in channels.RECIPIENT_KINDS:
            recipient = f"{kind}-{p}"
            name = channels.secret_name(vault, recipient)
            g[name] = read
            grants.setdefault(recipient, {})[name] = read
        spec = registry.get(p)
        g[registry.client_secret_name(spec)] = read
        g[AUDIT_KEY_SECRET] = read
        if spec.github_app is not None:  # the App's key (installation tokens) and its own
            g[GITHUB_APP_KEY_SECRET] = read  # OAuth client's secret (the install flow's code)
            g[registry.client_secret_name(spec, github_app=True)] = read
        w = grants.setdefault(f"webhook-{p}", {})
        w[app_secret_name(p)] = read
        w[app_secret_name(p) + PREVIOUS_SUFFIX] = read
        if spec.webhook.client_secret_jwt:  # Jira signs dynamic webhooks with it
            w[registry.client_secret_name(spec)] = read
            w[registry.client_secret_name(spec) + PREVIOUS_SUFFIX] = read
    return grants


def connection_secret_providers() -> list[str]:
    """Providers whose registered webhooks are signed with per-connection secrets: only their
    ``fetch-P`` reads and their token component writes those secrets (Jira's dynamic webhooks
    are signed with the client secret: it has none)."""
    return [p for p in policy.PROVIDERS if uses_connection_secret(registry.get(p))]


def host_secret_providers() -> list[str]:
    """Providers with self-hosted hosts (GitHub Enterprise Server, self-managed GitLab)."""
    return [p for p in policy.PROVIDERS if registry.get(p).self_hosted]


def _host_secret_readers() -> dict[str, dict[str, str]]:
    return {
        f"{hosts.SECRET_PREFIX}{p}-|token-{p}|{role}": {
            "prefix": f"{hosts.SECRET_PREFIX}{p}-", "account": f"token-{p}", "role": role,
            "provider": p}
        for p in host_secret_providers() for role in (ACCESSOR, SECRET_VIEWER)
    }


def export() -> dict[str, Any]:
    components = {
        name: {
            "account": account_for(name),
            "trigger": c.trigger,
            "entry_point": c.entry_point,
            "provider": c.provider or "",
            "public": c.trigger == "http",
            "topics": c.topics,
        }
        for name, c in sorted(COMPONENTS.items())
    }
    accounts: dict[str, dict[str, Any]] = {}
    for name, c in components.items():
        a = accounts.setdefault(c["account"], {"account_id": f"kw-{c['account']}",
                                               "provider": c["provider"], "components": []})
        a["components"].append(name)

    specs = {s.topic: s for s in topology.subscription_specs()}
    topics = {
        topic: {
            "subscriber": route.subscriber,
            "account": account_for(route.subscriber),
            "subscription": specs[topic].name,
            "dead_letter": specs[topic].dead_letter_topic,
            "hold": specs[topic].dead_letter_topic + "-hold",
            "provider": _provider_of(topic),
        }
        for topic, route in sorted(policy.ROUTES.items())
    }
    subscription = {
        "max_attempts": topology.MAX_ATTEMPTS,
        "min_backoff": f"{int(topology.MIN_BACKOFF_SECONDS)}s",
        "max_backoff": f"{int(topology.MAX_BACKOFF_SECONDS)}s",
        "ack_deadline": topology.ACK_DEADLINE_SECONDS,
    }

    topic_iam: dict[str, dict[str, str]] = {}
    subscription_iam: dict[str, dict[str, str]] = {}
    external_publishers: dict[str, dict[str, str]] = {}
    for topic, component, role in policy.iam_bindings():
        if component in EXTERNAL_PUBLISHERS:
            external_publishers[f"{topic}|{component}"] = {"topic": topic, "publisher": component}
            continue
        account = account_for(component)
        row = {"topic": topic, "account": account, "role": role,
               "provider": accounts[account]["provider"]}
        if role == SUBSCRIBER:  # granted where it means something: the topic's subscription
            row["subscription"] = topics[topic]["subscription"]
            subscription_iam[f"{row['subscription']}|{account}"] = row
        else:
            topic_iam[f"{topic}|{account}|{role}"] = row

    grants = secret_grants()
    registering = connection_secret_providers()
    secrets = {
        name: {"provider": _provider_of(name)}
        for name in sorted({s for g in grants.values() for s in g})
    }
    secret_iam = {
        f"{secret}|{account}|{role}": {"secret_id": secret, "account": account, "role": role,
                                       "provider": accounts[account]["provider"]}
        for account, g in sorted(grants.items())
        for secret, roles in sorted(g.items())
        for role in roles
    }
    secret_prefix_iam = {
        f"{CONNECTION_WEBHOOK_PREFIX}|{kind}-{p}|{role}": {
            "prefix": CONNECTION_WEBHOOK_PREFIX, "account": f"{kind}-{p}", "role": role,
            "provider": p,
        }
        for p in policy.PROVIDERS for kind in CONNECTION_SECRET_READERS
        if kind == "webhook" or p in registering for role in (ACCESSOR, SECRET_VIEWER)
    } | _host_secret_readers()
    secret_prefix_iam.update({
        f"{NOTIFY_SECRET_PREFIX}|{NOTIFY_SECRET_READER}|{role}": {
            "prefix": NOTIFY_SECRET_PREFIX, "account": NOTIFY_SECRET_READER, "role": role,
            "provider": ""}
        for role in (ACCESSOR, SECRET_VIEWER)
    })
    secret_writer_iam = {
        f"{CONNECTION_WEBHOOK_PREFIX}|token-{p}": {
            "prefix": CONNECTION_WEBHOOK_PREFIX, "account": f"token-{p}", "provider": p}
        for p in registering
    }
    notify_secret_writer_iam = {
        f"{NOTIFY_SECRET_PREFIX}|{NOTIFY_SECRET_WRITER}": {
            "prefix": NOTIFY_SECRET_PREFIX, "account": NOTIFY_SECRET_WRITER, "provider": ""}}
    outlet_iam = {
        f"{topic}|{account_for(component)}": {"topic": topic, "account": account_for(component),
                                              "role": role, "provider": ""}
        for topic, component, role in policy.outlet_bindings()
    }
    kms_keys = {f"vault-{p}": {"account": f"token-{p}", "provider": p} for p in policy.PROVIDERS}
    kms_iam = {
        f"{key}|{k['account']}": {"key": key, "account": k["account"], "role": KMS_USER,
                                  "provider": k["provider"]}
        for key, k in kms_keys.items()
    }
    database_iam = {}
    for account, a in sorted(accounts.items()):
        dbs = [BUSINESS_DB] + ([VAULT_DB] if account.startswith("token-") else [])
        for db in dbs:
            database_iam[f"{account}|{db}"] = {"account": account, "database": db,
                                               "role": DATASTORE_USER, "provider": a["provider"]}
    return {
        "kw_components": components,
        "kw_accounts": accounts,
        "kw_topics": topics,
        "kw_subscription": subscription,
        "kw_topic_iam": topic_iam,
        "kw_subscription_iam": subscription_iam,
        "kw_external_publishers": external_publishers,
        "kw_outlets": {t: {"carries": o.carries} for t, o in sorted(policy.OUTLETS.items())},
        "kw_outlet_iam": outlet_iam,
        "kw_secrets": secrets,
        "kw_secret_iam": secret_iam,
        "kw_secret_prefix_iam": secret_prefix_iam,
        "kw_secret_writer_iam": secret_writer_iam,
        "kw_notify_secret_writer_iam": notify_secret_writer_iam,
        "kw_connection_secret_permissions": list(CONNECTION_SECRET_PERMISSIONS),
        "kw_host_secret_writer_iam": {
            f"{hosts.SECRET_PREFIX}|{HOST_SECRET_WRITER}": {
                "prefix": hosts.SECRET_PREFIX, "account": HOST_SECRET_WRITER, "provider": ""}},
        "kw_host_secret_permissions": list(HOST_SECRET_PERMISSIONS),
        "kw_kms_keys": kms_keys,
        "kw_kms_iam": kms_iam,
        "kw_database_iam": database_iam,
        "kw_ttl_collections": {name: {"database": BUSINESS_DB, "field": retention.TTL_FIELD}
                               for name in sorted(TTL_COLLECTIONS)},
    }


def export_indexes() -> dict[str, Any]:
    """``kw_firestore_indexes``: ``database/collection/fields`` → database, collection and the
    fields in index order, the document name last in the direction of the field before it (as
    Firestore stores every composite index, so a plan shows no difference after apply)."""
    indexes = {}
    for ix in INDEXES:
        key = f"{ix.database}/{ix.collection}/" + ",".join(
            ("-" if way == "DESCENDING" else "") + name for name, way in ix.fields)
        fields = [{"field_path": name, "order": way} for name, way in ix.fields]
        fields.append({"field_path": "__name__", "order": ix.fields[-1][1]})
        indexes[key] = {"database": ix.database, "collection": ix.collection, "fields": fields}
    return {"kw_firestore_indexes": indexes}


def render() -> str:
    return json.dumps(export(), indent=2, sort_keys=True) + "\n"


def render_indexes() -> str:
    return json.dumps(export_indexes(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    outputs = {TARGET: render(), INDEXES_TARGET: render_indexes()}
    if "--check" in argv:
        stale = [path for path, text in outputs.items()
                 if not path.exists() or path.read_text() != text]
        for path in stale:
            sys.stderr.write(f"{path.relative_to(ROOT)} is stale: "
                             "run python -m keyway.infra_export\n")
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
        sys.stdout.write(f"{path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
