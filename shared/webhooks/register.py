"""``fetch-P`` registers keyway's webhook on each repository (project) of a connection whose
admin left webhook registration on, with the app token it already holds, through the
metadata-only client (only the table's allowlisted hook templates). A ``site`` registration
(Jira: one expiring dynamic webhook per connection) is kept by
:class:`shared.webhooks.dynamic.SiteRegistrar` instead; :func:`registrar` picks.

Once per repository. A sync calls :meth:`Registrar.ensure` after it has walked the
repositories; a repository with a ``webhook_registrations`` record is skipped with no
request, so a registered hook costs one request, once. Registration stops when the sync's time
budget is spent (after at least one repository); the sync's continuation, or the next sync,
goes on from the records. Per repository:

1. a record ``registering`` is written first (the intent), then the hook is POSTed to
   ``<public_url>/webhook-P/c/<connection>`` with the connection's secret (read from the
   secret store, never logged or stored in a record) → ``active`` with the hook id;
2. GitHub answers 422 when a hook with that URL exists (``Hook already exists on this
   repository``): the hooks are listed and the one with our URL is adopted (``adopted``);
3. a record left ``registering`` (the sync died after the POST, or the provider failed) makes
   the next sync list the hooks before it creates one — GitLab accepts duplicate URLs, so this
   is what keeps a redelivered job from registering twice;
4. 403/404 (the user does not administer the repository; GitHub hides it with a 404) or any
   other refusal → ``unavailable`` with the stable key ``webhooks.unavailable``; the sync goes
   on and the repository is tried again after :data:`RETRY_AFTER`, not on every sync;
5. a 5xx, timeout or malformed answer → ``webhooks.register_failed``; the next sync retries.

Before each repository the connection must still be ``active``: once the api has marked it
``disconnecting`` nothing more is registered (the vault is about to remove what exists).

A rate limit, a spent budget or a rejected token propagates: the sync defers or fails as it
would for any request. A missing secret logs ``webhooks.secret_missing`` and registers
nothing. A hook deleted at the provider by someone else is not re-created (keyway does not
poll hooks; that would cost a request per repository per sync).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.clock import isoformat
from shared.errors import NotFound
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from shared.fetch.plan import ProviderPlan
from shared.log import get_logger
from shared.ports import Ports, Snapshot
from shared.providers.schema import ProviderSpec
from shared.webhooks import dynamic, hooks
from shared.webhooks.hooks import RETRY_AFTER, Counts
from shared.webhooks.secrets import connection_secret_name

__all__ = ["RETRY_AFTER", "Counts", "Registrar", "registrar"]
log = get_logger("keyway.webhooks")


class Registrar:
    """Registers the hook of one connection on its repositories; see the module docstring."""

    def __init__(self, ports: Ports, client: ProviderClient, spec: ProviderSpec,
                 plan: ProviderPlan, tenant: str, connection: str, public_url: str) -> None:
        assert spec.webhook_registration is not None
        self._ports, self._client, self._spec, self._plan = ports, client, spec, plan
        self._reg = spec.webhook_registration
        self._tenant, self._connection = tenant, connection
        self.url = hooks.callback_url(public_url, spec.name, connection)
        self.counts = Counts()

    def __repr__(self) -> str:
        return f"Registrar(provider={self._spec.name!r}, connection={self._connection!r})"

    def ensure(self, repositories: Sequence[Snapshot],
               out_of_time: Callable[[], bool] | None = None) -> Counts:
        """Register on every repository that needs it (none: no request at all). Once
        ``out_of_time()`` says the sync's budget is spent it stops (after at least one); the
        next run goes on from the records."""
        known = hooks.for_connection(self._ports.business, self._connection)
        due = [r for r in repositories if self._due(known.get(r.id))]
        secret = self._secret() if due else None
        done = 0
        for repo in due if secret is not None else ():
            if done and out_of_time is not None and out_of_time():
                break
            if not self._still_active():  # disconnecting: register nothing more
                break
            self._one(repo, known.get(repo.id), secret)
            done += 1
        if due:
            log.info("webhooks.registration", extra={"fields": {
                "provider": self._spec.name, "connection": self._connection,
                "due": len(due), "deferred": len(due) - done if secret else 0,
                **vars(self.counts)}})
        return self.counts

    def _due(self, record: dict[str, Any] | None) -> bool:
        if record is None or record.get("status") == "registering":
            return True
        if record.get("status") == "unavailable":
            return (record.get("retry_at") or "") <= isoformat(self._ports.clock.now())
        return False

    def _still_active(self) -> bool:
        doc = self._ports.business.get("connections", self._connection)
        return doc is not None and doc.get("status") == "active"

    def _secret(self) -> str | None:
        name = connection_secret_name(self._connection)
        try:
            return self._ports.secrets.access(name or "").decode("ascii")
        except (NotFound, UnicodeDecodeError):
            log.warning("webhooks.secret_missing", extra={"fields": {
                "provider": self._spec.name, "connection": self._connection}})
            return None

    def _one(self, repo: Snapshot, record: dict[str, Any] | None, secret: str) -> None:
        params = self._plan.repo_params(repo.data)
        base = {**(record or {}), "tenant": self._tenant, "provider": self._spec.name,
                "connection": self._connection, "repository": repo.id,
                "external_id": str(repo.data.get("external_id")), "target": params,
                "url": self.url}
        fields = {"provider": self._spec.name, "connection": self._connection,
                  "external_id": base["external_id"]}
        try:
            hook = self._listed(params) if record and (
                record.get("status") == "registering" or record.get("hook_id")) else None
            adopted = hook is not None
            if hook is None:
                base = hooks.save(self._ports, base, status="registering", hook_id=None)
                hook, adopted = self._create(params, secret)
        except (NotFoundAtProvider, ProviderRefused) as e:
            status = e.provider_status if isinstance(e, ProviderRefused) else 404
            hooks.save(self._ports, base, status="unavailable", reason=e.key,
                       retry_at=isoformat(self._ports.clock.now() + RETRY_AFTER))
            self.counts.unavailable += 1
            log.info("webhooks.unavailable", extra={"fields": {**fields, "status": status}})
            return
        except (ProviderUnavailable, MalformedResponse) as e:
            self.counts.failed += 1
            log.warning("webhooks.register_failed", extra={"fields": {**fields,
                                                                       "reason": e.key}})
            return
        hooks.save(self._ports, base, status="active", hook_id=str(hook["id"]), adopted=adopted,
                   reason=None, retry_at=None)
        self.counts.adopted += adopted
        self.counts.registered += not adopted
        log.info("webhooks.adopted" if adopted else "webhooks.registered",
                 extra={"fields": fields})

    def _create(self, params: dict[str, str], secret: str) -> tuple[dict[str, Any], bool]:
        body = hooks.PROFILES[self._spec.name].body(self.url, secret, self._reg.events)
        try:
            created = self._client.post(self._reg.templates["create"], params, json=body).body
        except ProviderRefused as e:
            found = self._listed(params) if e.provider_status == 422 else None
            if found is None:
                raise
            return found, True  # GitHub: "Hook already exists on this repository"
        if not isinstance(created, dict) or not isinstance(created.get("id"), int | str):
            raise MalformedResponse(f"{self._spec.name}: a created hook without an id")
        return created, False

    def _listed(self, params: dict[str, str]) -> dict[str, Any] | None:
        listed = self._client.get(self._reg.templates["list"], params).body
        return hooks.find(listed, self._spec.name, self.url)


def registrar(ports: Ports, client: ProviderClient, spec: ProviderSpec, plan: ProviderPlan,
              tenant: str, record: dict[str, Any], connection: str,
              public_url: str) -> Registrar | dynamic.SiteRegistrar | None:
    """The registrar of a connection that registers hooks (None for every other one): one
    hook per repository, or (a ``site`` registration) one dynamic webhook per connection."""
    reg = spec.webhook_registration
    if not record.get("register_webhooks") or reg is None or record.get("installation_id"):
        return None
    if reg.kind == "site":
        return dynamic.SiteRegistrar(ports, client, spec, tenant, connection, public_url)
    if spec.name not in hooks.PROFILES:
        return None
    return Registrar(ports, client, spec, plan, tenant, connection, public_url)
