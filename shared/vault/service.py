"""What ``oauth-P`` (in-process) and ``vault-P`` call: store, release, refresh, disconnect.

Plaintext tokens live here only for the duration of a call: stored encrypted field by field,
released only sealed to one recipient, never returned by any API and never logged. Every
release, refusal, refresh and revocation appends to the provider's audit chain, and so does
retiring a data key (:mod:`shared.vault.keys`).

A stored token that no longer decrypts (its data-key version was retired, its ciphertext
damaged: the opaque ``CryptoError``) marks its record ``needs_reauth`` with ``status_reason``
``vault.undecryptable`` (log key ``vault.undecryptable``, no token, no ciphertext) and the
release raises :class:`Undecryptable`, which the handlers turn into the connection's status.
So does a record rolled back: a field from another generation of the record, or the whole
record older than its generation anchor (:mod:`shared.vault.anchors`) — the same opaque error,
the same status, and no token released or refreshed with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from shared.audit.chain import AuditLog
from shared.clock import isoformat
from shared.crypto.channels import ChannelKeys
from shared.crypto.datakeys import DataKeyring
from shared.crypto.fields import FieldCipher
from shared.crypto.seal import new_claims, seal
from shared.errors import Conflict, CryptoError, KeywayError, NotFound, RetryableError
from shared.log import get_logger
from shared.ports import Filter, Ports
from shared.vault import _installation as installation
from shared.vault import release as policy
from shared.vault._store import store_record
from shared.vault.anchors import GenerationAnchors
from shared.vault.oauth import EndpointResolver, TokenEndpoint, as_resolver
from shared.vault.records import APP, PERSONAL, RecordCodec, personal_id
from shared.vault.refresh import NeedsReauth, Refresher, RefreshPolicy
from shared.vault.tokens import TokenSet

ENVELOPE_TTL_SECONDS = 300
log = get_logger("keyway.vault")


class Undecryptable(NeedsReauth):
    key, title = "vault.undecryptable", "A stored token can no longer be decrypted; reconnect"


class NoPersonalToken(Conflict):
    key, title = "vault.no_personal_token", "Link your identity with this provider first"


class VaultService:
    def __init__(self, provider: str, ports: Ports,
                 endpoint: TokenEndpoint | EndpointResolver, *,
                 keyring: DataKeyring | None = None,
                 refresh_policy: RefreshPolicy | None = None) -> None:
        self.provider, self.component = provider, f"vault-{provider}"
        self._ports, self._endpoints = ports, as_resolver(endpoint)
        self.keyring = keyring or DataKeyring(self.component, ports)
        self.codec = RecordCodec(provider, FieldCipher(self.keyring))
        self._channels = ChannelKeys(ports.secrets)
        self.audit = AuditLog(ports.business, ports.secrets, ports.clock, chain=self.component)
        self.anchors = GenerationAnchors(provider, ports.business, ports.clock)
        self.refresher = Refresher(ports.vault, self.codec, self._endpoints, ports.clock,
                                   self.anchors, refresh_policy, on_event=self._audit_refresh)
        self.installations = installation.InstallationTokens(provider, ports)

    # -- storing (the OAuth callback, in-process) -------------------------------------------
    # ``host``: the registered self-hosted host that issued the tokens (its OAuth client
    # refreshes and revokes them), None for the provider's cloud.
    def store_app_token(self, tenant: str, connection: str, admin_user: str,
                        tokens: TokenSet, base_url: str | None = None, *,
                        host: str | None = None) -> None:
        self._store(APP, connection, tenant, tokens, {
            "kind": "app", "connection": connection, "user": admin_user, "base_url": base_url,
            "host": host})

    def store_personal_token(self, tenant: str, user: str, tokens: TokenSet,
                             base_url: str | None = None, *, host: str | None = None) -> str:
        record_id = personal_id(self.provider, tenant, user)
        self._store(PERSONAL, record_id, tenant, tokens, {
            "kind": "personal", "connection": None, "user": user, "base_url": base_url,
            "host": host})
        return record_id

    def store_installation(self, tenant: str, connection: str, admin_user: str,
                           installation_id: str) -> None:
        """A GitHub App installation: no token is stored, each release mints one."""
        base = {"kind": "app", "connection": connection, "user": admin_user, "base_url": None}
        record = installation.record(self.provider, tenant, installation_id, base)
        self._put(APP, connection, tenant, lambda generation: record, base)

    def _store(self, collection: str, record_id: str, tenant: str, tokens: TokenSet,
               base: dict[str, Any]) -> None:
        self._put(collection, record_id, tenant, lambda generation: self.codec.encode(
            collection, record_id, tenant, tokens, base, generation), base)

    def _put(self, collection: str, record_id: str, tenant: str,
             make: Callable[[int], dict[str, Any]], base: dict[str, Any]) -> None:
        store_record(self._ports, self.codec, self.anchors, collection, record_id, tenant, make)
        self._audit("store", base["user"], None, None, base.get("connection"), "stored")

    # -- releasing --------------------------------------------------------------------------
    def release_for_fetch(self, tenant: str, connection: str, requester: str) -> dict:
        """A sealed app-token envelope for ``fetch-P`` (the only place an app token goes)."""
        request = policy.ReleaseRequest("app", "fetch", f"fetch-{self.provider}", tenant,
                                        connection, requester)
        return self.release(request, user=None)

    def release_for_action(self, tenant: str, requester_user: str, connection: str) -> dict:
        """The requesting user's own personal token, sealed for ``act-P``."""
        request = policy.ReleaseRequest("personal", "action", f"act-{self.provider}", tenant,
                                        connection, requester_user)
        return self.release(request, user=requester_user)

    def release(self, request: policy.ReleaseRequest, user: str | None) -> dict:
        try:
            policy.check(self.provider, request)
            collection, record_id, doc = self._locate(request)
            tokens = (self.installations.mint(collection, record_id, doc)
                      if doc.get("installation_id")  # minted, never refreshed
                      else self._fresh(collection, record_id))
            claims = new_claims(self.component, request.recipient, request.purpose,
                                request.connection or record_id, user,
                                self._ports.clock.now(), ENVELOPE_TTL_SECONDS)
            envelope = seal(self._channels.key(self.component, request.recipient), claims,
                            tokens.access_token.encode())
        except RetryableError:
            raise
        except KeywayError as e:
            self._audit("release", request.requester, request.recipient, request.purpose,
                        request.connection, f"refused:{e.key}")
            raise
        self._audit("release", request.requester, request.recipient, request.purpose,
                    request.connection, "released")
        return envelope

    def _locate(self, request: policy.ReleaseRequest) -> tuple[str, str, dict]:
        if request.kind == "app":
            collection, record_id = APP, request.connection or ""
            missing: KeywayError = NotFound("no app token for this connection")
        else:  # personal: looked up by the requester's own id, nothing else
            collection = PERSONAL
            record_id = personal_id(self.provider, request.tenant, request.requester)
            missing = NoPersonalToken(f"user has no linked {self.provider} identity")
        doc = self._ports.vault.get(collection, record_id)
        if doc is None or doc.get("tenant") != request.tenant:
            raise missing
        if doc.get("status") == "needs_reauth":
            raise NeedsReauth("this token must be authorized again; reconnect",
                              key=doc.get("status_reason") or NeedsReauth.key)
        return collection, record_id, doc

    def _fresh(self, collection: str, record_id: str) -> TokenSet:
        try:
            return self.refresher.fresh(collection, record_id)
        except CryptoError:
            doc = self._ports.vault.get(collection, record_id)
            if doc is None or self._decrypts(collection, record_id, doc,
                                             self.anchors.floor(collection, record_id)):
                raise  # not the stored token (e.g. the primary key failed to encrypt)
            self.mark_undecryptable(collection, record_id, doc)
            raise Undecryptable("a stored token can no longer be decrypted; reconnect") from None

    def _decrypts(self, collection: str, record_id: str, doc: dict, floor: int) -> bool:
        try:
            self.codec.decode(collection, record_id, doc, floor)
        except CryptoError:
            return False
        return True

    def mark_undecryptable(self, collection: str, record_id: str, seen: dict) -> None:
        """Record that the tokens of ``seen`` (the record as read) no longer decrypt:
        ``needs_reauth`` with the reason ``vault.undecryptable`` (a retired key never comes
        back) — unless the record was stored again since (its generation moved)."""
        now = isoformat(self._ports.clock.now())

        def write(tx):
            current = tx.get(collection, record_id)
            if current is not None and current.get("generation") == seen.get("generation"):
                tx.put(collection, record_id, dict(
                    current, status="needs_reauth", status_reason=Undecryptable.key,
                    refresh_lease=None, updated_at=now))

        self._ports.vault.transaction(write)
        log.warning(Undecryptable.key, extra={"fields": {
            "component": self.component, "collection": collection,
            "connection": record_id if collection == APP else None}})

    # -- disconnect ------------------------------------------------------------------------
    def disconnect(self, tenant: str, connection: str, requester: str,
                   cleanup: Callable[[str], None] | None = None, *, revoke: bool = True) -> bool:
        """Run ``cleanup`` with the token, revoke at the provider where it offers
        revocation (unless ``revoke`` is False: the grant is shared with another connection
        or identity, audited ``kept_shared_grant``), then delete the record.

        ``cleanup`` (removing keyway's webhooks, :mod:`shared.webhooks.unregister`) gets a
        valid access token — refreshed first if it is about to expire — and runs before the
        revocation; its failure is logged (``vault.cleanup_failed``) and audited, never fatal.
        Returns whether the provider revoked. The record is deleted even if revocation
        fails (audited as ``revoke_failed``): keeping our copy would be the worse outcome.
        """
        doc = self._ports.vault.get(APP, connection)
        if doc is None or doc.get("tenant") != tenant:
            raise NotFound("no app token for this connection")
        if doc.get("installation_id"):
            self.installations.forget(doc)
        elif cleanup is not None:
            doc = self._clean_up(connection, requester, cleanup) or doc
        revoked, outcome = self._revoke(APP, connection, doc) if revoke else (
            False, "kept_shared_grant")
        self._ports.vault.delete(APP, connection)
        # One past the last generation: a restored copy of the deleted record stays refused.
        self.anchors.advance(APP, connection, tenant, self.codec.next_generation(doc, 0))
        self._audit("revoke", requester, None, None, connection, outcome)
        return revoked

    def unlink(self, tenant: str, user: str, requester: str, *, revoke: bool = True) -> None:
        """Delete the user's personal token, revoking it first unless the grant is shared
        (:mod:`shared.vault.grants`); a missing record is already unlinked."""
        record_id = personal_id(self.provider, tenant, user)
        doc = self._ports.vault.get(PERSONAL, record_id)
        if doc is None or doc.get("tenant") != tenant:
            return
        _, outcome = self._revoke(PERSONAL, record_id, doc) if revoke else (
            False, "kept_shared_grant")
        self._ports.vault.delete(PERSONAL, record_id)
        self.anchors.advance(PERSONAL, record_id, tenant, self.codec.next_generation(doc, 0))
        self._audit("unlink", requester, None, None, None, outcome)

    def _revoke(self, collection: str, record_id: str, doc: dict) -> tuple[bool, str]:
        """Revoke the record's tokens at the provider: (revoked?, audit outcome)."""
        revoked = False
        try:
            tokens = self.codec.decode(collection, record_id, doc,
                                       self.anchors.floor(collection, record_id))
            for token in filter(None, (tokens.refresh_token, tokens.access_token)):
                revoked = self._endpoints(doc).revoke(token) or revoked
        except KeywayError as e:
            log.warning("vault.revoke_failed", extra={"fields": {"collection": collection}})
            return False, f"revoke_failed:{e.key}"
        return revoked, "revoked" if revoked else "not_offered"

    def _clean_up(self, connection: str, requester: str,
                  cleanup: Callable[[str], None]) -> dict | None:
        """``cleanup(access_token)``; returns the record as it is afterwards (a refresh may
        have rotated the tokens that revocation then needs)."""
        try:
            cleanup(self.refresher.fresh(APP, connection).access_token)
            outcome = "done"
        except KeywayError as e:
            outcome = f"failed:{e.key}"
            log.warning("vault.cleanup_failed", extra={"fields": {"connection": connection,
                                                                  "reason": e.key}})
        self._audit("cleanup", requester, None, None, connection, outcome)
        return self._ports.vault.get(APP, connection)

    # -- key rotation -----------------------------------------------------------------------
    def encrypted_records(self) -> Iterator[tuple[str, Any]]:
        """Every record of this provider that holds encrypted fields, as (collection, snapshot)."""
        for collection in (APP, PERSONAL):
            for snap in self._ports.vault.query(collection,
                                                [Filter("provider", "==", self.provider)]):
                if not snap.data.get("installation_id"):  # nothing encrypted in those
                    yield collection, snap

    def reencrypt(self, progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
        """Rewrite every record of this provider under the newest data key; yields ids.

        Each is rewritten at its next generation (legacy records too) and anchored. A record
        that no longer decrypts is marked (:meth:`mark_undecryptable`) and skipped."""
        snaps = list(self.encrypted_records())
        for done, (collection, snap) in enumerate(snaps, 1):
            floor = self.anchors.floor(collection, snap.id)
            if not self._decrypts(collection, snap.id, snap.data, floor):
                self.mark_undecryptable(collection, snap.id, snap.data)
                continue
            fresh = self.codec.reencrypt(collection, snap.id, snap.data, floor)
            if self._ports.vault.transaction(
                    lambda tx, c=collection, s=snap, f=fresh: self._rewrite(tx, c, s, f)):
                self.anchors.advance(collection, snap.id, fresh["tenant"], fresh["generation"])
            if progress:
                progress(done, len(snaps))
            yield f"{collection}/{snap.id}"

    def _rewrite(self, tx: Any, collection: str, snap: Any, fresh: dict) -> bool:
        """Write ``fresh`` unless the record changed meanwhile (then it is already new)."""
        current = tx.get(collection, snap.id)
        if current is None or current.get("generation") != snap.data.get("generation"):
            return False
        tx.put(collection, snap.id, fresh)
        return True

    # -- audit ------------------------------------------------------------------------------
    def _audit(self, event: str, requester: str, recipient: str | None, purpose: str | None,
               connection: str | None, outcome: str) -> None:
        self.audit.append(event, requester=requester, recipient=recipient, purpose=purpose,
                          connection=connection, outcome=outcome)

    def _audit_refresh(self, event: str, collection: str, record_id: str, outcome: str) -> None:
        connection = record_id if collection == APP else None
        self._audit(event, self.component, None, None, connection, outcome)
