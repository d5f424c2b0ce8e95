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
"""

from __future__ import annotations

from typing import Any

from shared import ids
from shared.clock import isoformat, parse_iso
from shared.crypto.fields import FieldCipher, FieldContext
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

    def _context(self, tenant: str, collection: str, record_id: str, field: str) -> FieldContext:
        return FieldContext(tenant=tenant, provider=self.provider, collection=collection,
                            record_id=record_id, field=field)

    def encode(self, collection: str, record_id: str, tenant: str, tokens: TokenSet,
               base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (clear metadata) plus the encrypted token fields of ``tokens``."""
        doc = dict(base)
        doc.update(
            tenant=tenant, provider=self.provider,
            expires_at=isoformat(tokens.expires_at) if tokens.expires_at else None,
            scopes=list(tokens.scopes),
            account_id=tokens.account_id if tokens.account_id else base.get("account_id"),
        )
        for field in ENCRYPTED_FIELDS:
            value = getattr(tokens, field)
            doc[field] = (None if value is None else self._cipher.encrypt(
                value.encode(), self._context(tenant, collection, record_id, field)))
        return doc

    def decode(self, collection: str, record_id: str, doc: dict[str, Any]) -> TokenSet:
        tenant = doc["tenant"]
        values: dict[str, str | None] = {}
        for field in ENCRYPTED_FIELDS:
            blob = doc.get(field)
            values[field] = None if blob is None else self._cipher.decrypt(
                blob, self._context(tenant, collection, record_id, field)).decode()
        return TokenSet(
            access_token=values["access_token"] or "",
            refresh_token=values["refresh_token"],
            expires_at=parse_iso(doc["expires_at"]) if doc.get("expires_at") else None,
            scopes=tuple(doc.get("scopes") or ()),
            account_id=doc.get("account_id"),
        )

    def reencrypt(self, collection: str, record_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        """The same document with every encrypted field under the newest data key."""
        tokens = self.decode(collection, record_id, doc)
        return self.encode(collection, record_id, doc["tenant"], tokens, doc)

    def key_versions(self, doc: dict[str, Any]) -> set[int]:
        return {self._cipher.key_version(doc[f]) for f in ENCRYPTED_FIELDS if doc.get(f)}
