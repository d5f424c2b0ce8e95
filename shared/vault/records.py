"""Vault records in the vault database: tokens encrypted field by field.

Collections (one vault database shared by every provider's vault; each provider's fields are
encrypted under that provider's own data key, bound to tenant, provider, collection, record id
and field):

* ``app_tokens/<connection>`` — the token an admin connected for a connection (fetch only), or
  for a GitHub App installation only its ``installation_id``: no token is stored, the vault
  mints a one-hour installation token from the app's private key at each release;
* ``personal_tokens/<provider>:<tenant>:<user>`` — a user's linked identity (actions only);
  the id is :func:`shared.ids.identity_id` (each part escaped).

Clear fields, because queries and the refresh protocol need them: tenant, provider, kind,
connection, user, expires_at, scopes, account_id, generation, status, refresh_lease,
updated_at. Encrypted: access_token, refresh_token.

``generation`` goes up by one with every write of the encrypted fields (store, refresh,
re-encryption, the rewrite of a legacy record), in the transaction that writes them, and each
field's associated data binds it: a field from another generation fails to decrypt. A record is
read with a ``floor``, its anchor's generation (:mod:`shared.vault.anchors`): below it, the
record is refused with the same opaque ``CryptoError``.

Legacy records, written before the generation was bound (format-1 ciphertexts), are read with
the format-1 associated data only while they have no anchor (``floor == 0``); the first read
rewrites them at the next generation and anchors them (:class:`~shared.vault.refresh.Refresher`),
after which the format-1 ciphertexts of that record are refused like any other rollback.
"""

from __future__ import annotations

from typing import Any

from shared import ids
from shared.clock import isoformat, parse_iso
from shared.crypto.fields import FieldCipher, FieldContext
from shared.errors import CryptoError
from shared.vault.tokens import TokenKind, TokenSet

APP, PERSONAL = "app_tokens", "personal_tokens"
COLLECTIONS: dict[TokenKind, str] = {"app": APP, "personal": PERSONAL}
ENCRYPTED_FIELDS = ("access_token", "refresh_token")


personal_id = ids.identity_id  # the same id as the user's ``identities`` record


class RecordCodec:
    """Turns a :class:`TokenSet` into a vault document and back, for one provider."""

    def __init__(self, provider: str, cipher: FieldCipher) -> None:
        self.provider = provider
        self._cipher = cipher

    def _context(self, tenant: str, collection: str, record_id: str, field: str,
                 generation: int | None) -> FieldContext:
        return FieldContext(tenant=tenant, provider=self.provider, collection=collection,
                            record_id=record_id, field=field, generation=generation)

    def encode(self, collection: str, record_id: str, tenant: str, tokens: TokenSet,
               base: dict[str, Any], generation: int) -> dict[str, Any]:
        """``base`` (clear metadata) plus the token fields of ``tokens`` encrypted for
        ``generation``, which the written record must carry (it is set here)."""
        doc = dict(base)
        doc.update(
            tenant=tenant, provider=self.provider, generation=generation,
            expires_at=isoformat(tokens.expires_at) if tokens.expires_at else None,
            scopes=list(tokens.scopes),
            account_id=tokens.account_id if tokens.account_id else base.get("account_id"),
        )
        for field in ENCRYPTED_FIELDS:
            value = getattr(tokens, field)
            doc[field] = (None if value is None else self._cipher.encrypt(
                value.encode(), self._context(tenant, collection, record_id, field, generation)))
        return doc

    def decode(self, collection: str, record_id: str, doc: dict[str, Any],
               floor: int) -> TokenSet:
        """The tokens of ``doc``, which must be at generation ``floor`` or later (its anchor;
        0 when it has none). Any mismatch → the opaque ``CryptoError``."""
        tenant, generation = doc["tenant"], self.bound_generation(doc, floor)
        values: dict[str, str | None] = {}
        for field in ENCRYPTED_FIELDS:
            blob = doc.get(field)
            values[field] = None if blob is None else self._cipher.decrypt(
                blob, self._context(tenant, collection, record_id, field, generation)).decode()
        return TokenSet(
            access_token=values["access_token"] or "",
            refresh_token=values["refresh_token"],
            expires_at=parse_iso(doc["expires_at"]) if doc.get("expires_at") else None,
            scopes=tuple(doc.get("scopes") or ()),
            account_id=doc.get("account_id"),
        )

    def bound_generation(self, doc: dict[str, Any], floor: int) -> int | None:
        """The generation ``doc``'s fields are bound to, checked against ``floor``; ``None``
        for a legacy record (format-1 fields), accepted only without an anchor."""
        blobs = [doc[f] for f in ENCRYPTED_FIELDS if doc.get(f) is not None]
        formats = {self._cipher.binds_generation(blob) for blob in blobs}
        generation = doc.get("generation")
        if formats == {False} and floor == 0:
            return None
        if formats != {True} or type(generation) is not int or generation < max(floor, 1):
            raise CryptoError() from None
        return generation

    def next_generation(self, doc: dict[str, Any], floor: int) -> int:
        """The generation the next write of ``doc``'s fields gets: past the record's own and
        past its anchor (a record deleted and stored again never goes back)."""
        generation = doc.get("generation")
        return max(generation if type(generation) is int else 0, floor) + 1

    def reencrypt(self, collection: str, record_id: str, doc: dict[str, Any],
                  floor: int) -> dict[str, Any]:
        """The same document with every encrypted field under the newest data key, at the next
        generation."""
        tokens = self.decode(collection, record_id, doc, floor)
        return self.encode(collection, record_id, doc["tenant"], tokens, doc,
                           self.next_generation(doc, floor))

    def key_versions(self, doc: dict[str, Any]) -> set[int]:
        return {self._cipher.key_version(doc[f]) for f in ENCRYPTED_FIELDS if doc.get(f)}
