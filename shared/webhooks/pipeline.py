"""The webhook pipeline of ``webhook-P``, in its fixed order.

``POST /`` (app-level secret) or ``POST /c/<connection-id>`` (that connection's secret):

1. size cap — ``max_body_bytes`` from the provider table; larger → 413 ``too_large``
   (at most cap + 1 bytes are read);
2. raw body — kept as bytes, never decoded before the signature is checked;
3. signature — the table's scheme (GitHub, Bitbucket and Jira ``hmac_sha256_hex``,
   GitLab ``token_header``), or GitLab's signed format when its headers are present (then
   the signature alone decides), or
   — at the app-level path of a provider with ``client_secret_jwt`` (Jira's dynamic webhooks
   of OAuth 2.0 apps), when the table's signature header is absent — ``Authorization: Bearer
   <JWT>`` verified with ``<provider>-client-secret`` (and its ``-previous``), see
   :func:`shared.webhooks.signatures.jwt_claims`;
   absent → 401 ``missing_signature``, wrong → 401 ``invalid_signature``, a signed timestamp
   more than 5 minutes away, or a JWT outside its ``iat``..``exp`` window or issued more than
   5 minutes ago (60 s leeway each) → 401 ``stale_timestamp``, a JWT whose ``exp - iat``
   exceeds an hour → 401 ``token_lifetime``, a connection without a secret → 404
   ``unknown_connection``;
4. delivery dedupe — :mod:`shared.webhooks.deliveries`: one create-if-absent, the only write
   of an acknowledgement; a redelivery within the lease → 202 ``duplicate``, not published
   again (Bitbucket: the request UUID within its hook's UUID); one after it is published again
   with its first arrival time (ingest is idempotent), which recovers a crashed claim;
5. JSON parse — not a JSON object → 400 ``invalid_json`` (the claim is released, as after a
   failed publish; a failed release logs ``webhook.<provider>.release_failed``);
6. publish ``webhook.event`` to ``events-P`` → 202 ``{"status": "accepted"}``; the message
   says how it was verified (``verified_by``: the table's scheme, ``standard_webhooks`` or
   ``client_secret_jwt``), which ``ingest`` uses to attribute Jira's dynamic webhooks.

Another path → 404 ``not_found``, another method → 405 ``method_not_allowed`` (checked once the
body is read, so no answer ever leaves an oversized body to be drained).

Each rejection raises one error whose key (``webhook.<provider>.<reason>``) the entry point
logs once (the 413 is logged and answered here: it must be a streamed response, see
:meth:`Receiver._too_large`); nothing is stored for it. No provider API is called:
``ingest`` does the rest. An event whose message would exceed the bus limit is published
without its payload (``payload_omitted``) and ingest answers it with a follow-up sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response

from shared import messages
from shared.errors import ConfigError, InvalidInput, KeywayError, NotFound
from shared.http import PROBLEM_JSON, json_response, problem_from_error
from shared.log import get_logger
from shared.ports import Ports
from shared.providers import registry
from shared.providers.schema import WebhookSpec
from shared.webhooks import deliveries, signatures
from shared.webhooks.body import read_capped
from shared.webhooks.delivery_profiles import PROFILES
from shared.webhooks.errors import MethodNotAllowed, PayloadTooLarge, Unauthorized, key
from shared.webhooks.secrets import SecretCache, app_secret_name, connection_secret_name

log = get_logger("keyway.webhooks")
Check = Callable[[tuple[bytes, ...]], bool]
JWT = "client_secret_jwt"
SIGNED = ("webhook-id", "webhook-timestamp", "webhook-signature")
_MAX_HEADER = 256
_JWT_REFUSALS = {"token_lifetime": "the token's lifetime (exp - iat) is longer than allowed",
                 "stale_timestamp": "the token is expired, too old or not yet valid"}


def _header(request: Any, name: str | None) -> str | None:
    """A header as a short printable string; anything else counts as absent."""
    value = request.headers.get(name) if name else None
    if not value or len(value) > _MAX_HEADER or not value.isascii() or not value.isprintable():
        return None
    return value


class Receiver:
    """The HTTP handler of ``webhook-<provider>`` (see the module docstring)."""

    def __init__(self, provider: str, spec: WebhookSpec | None = None) -> None:
        self.provider = provider
        self.spec = spec or registry.get(provider).webhook
        self.profile = PROFILES[provider]
        self.secrets = SecretCache()

    def __repr__(self) -> str:
        return f"Receiver({self.provider!r})"

    def __call__(self, ports: Ports, request: Any) -> Response:
        try:  # first, so that no answer leaves an oversized body to be drained
            body = self._body(request)
        except PayloadTooLarge as e:
            return self._too_large(e, request)
        connection = self._route(request)
        verified = self._verify(ports, request, body, connection)
        return self._accept(ports, request, body, connection, verified)

    def _key(self, reason: str) -> str:
        return key(self.provider, reason)

    # ---- 1. size cap and 2. raw body; the route ------------------------------------------
    def _route(self, request: Any) -> str | None:
        parts = [p for p in (request.path or "/").split("/") if p]
        if parts and (len(parts) != 2 or parts[0] != "c"):
            raise NotFound("no webhook endpoint at this path", key=self._key("not_found"))
        if request.method != "POST":
            raise MethodNotAllowed("webhooks are POSTed",
                                   key=self._key("method_not_allowed"))
        return parts[1] if parts else None

    def _body(self, request: Any) -> bytes:
        cap = self.spec.max_body_bytes
        body = read_capped(request.stream, request.content_length, cap)
        if body is None:
            raise PayloadTooLarge(f"the body exceeds {cap} bytes", key=self._key("too_large"))
        return body

    def _too_large(self, error: PayloadTooLarge, request: Any) -> Response:
        """The 413, logged here (once) and answered as a *streamed* response.

        functions-framework reads the whole request before answering unless the response is
        streamed (its ``read_request`` after-request hook); a streamed 413 is what keeps the
        oversized remainder of the body unread.
        """
        log.info(error.key, extra={"fields": {"component": f"webhook-{self.provider}",
                                              "path": request.path}})
        problem = problem_from_error(error)
        return Response(iter([problem.get_data()]), status=problem.status_code,
                        mimetype=PROBLEM_JSON)

    # ---- 3. signature -------------------------------------------------------------------
    def _verify(self, ports: Ports, request: Any, body: bytes,
                connection: str | None) -> tuple[str | None, str]:
        """Raise unless one current or previous secret signs the request; returns the signed
        message id of a Standard Webhooks signature (the delivery id to dedupe on) and how
        the request was verified."""
        check, signed_id, scheme = self._check(ports, request, body, connection)
        name = (registry.client_secret_name(registry.get(self.provider)) if scheme == JWT
                else self._secret_name(connection))
        candidates = self.secrets.candidates(ports.secrets, ports.clock, name)
        if not candidates:
            self._no_secret(connection, name)
        if check(candidates):
            return signed_id, scheme
        refreshed = self.secrets.refreshed(ports.secrets, ports.clock, name)
        if refreshed and check(refreshed):
            return signed_id, scheme
        raise Unauthorized("the signature does not verify", key=self._key("invalid_signature"))

    def _check(self, ports: Ports, request: Any, body: bytes,
               connection: str | None) -> tuple[Check, str | None, str]:
        if self.profile.standard_webhooks and request.headers.get("webhook-signature"):
            return self._standard_check(ports, request, body)
        header = request.headers.get(self.spec.signature_header or "")
        if not header and self.spec.client_secret_jwt and connection is None:
            token = _bearer(request)
            if token:
                return self._jwt_check(ports, token), None, JWT
        if not header:
            alternative = " (or a Bearer token)" if self.spec.client_secret_jwt else ""
            raise Unauthorized(f"{self.spec.signature_header}{alternative} is missing",
                               key=self._key("missing_signature"))
        scheme = self.spec.scheme
        if scheme == "hmac_sha256_hex":
            prefix = self.spec.signature_prefix
            return (lambda s: signatures.hmac_hex(body, header, prefix, s)), None, scheme
        if scheme == "token_header":
            return (lambda s: signatures.token(header, s)), None, scheme
        raise ConfigError(f"webhook scheme {scheme!r} cannot be verified")

    def _jwt_check(self, ports: Ports, token: str) -> Check:
        """Signature first; the token's time window only once it is known to be genuine."""
        def check(secrets: tuple[bytes, ...]) -> bool:
            claims = signatures.jwt_claims(token, secrets)
            if claims is None:
                return False
            refusal = signatures.jwt_refusal(claims, ports.clock.now().timestamp())
            if refusal is not None:
                raise Unauthorized(_JWT_REFUSALS[refusal], key=self._key(refusal))
            return True
        return check

    def _standard_check(self, ports: Ports, request: Any,
                        body: bytes) -> tuple[Check, str | None, str]:
        message_id, timestamp, signature = (request.headers.get(h) for h in SIGNED)
        if not message_id or not timestamp or not signature:
            raise Unauthorized("webhook-id, webhook-timestamp and webhook-signature go together",
                               key=self._key("missing_signature"))
        if not signatures.fresh(timestamp, ports.clock.now().timestamp()):
            raise Unauthorized("webhook-timestamp is outside the 5-minute tolerance",
                               key=self._key("stale_timestamp"))
        return (lambda secrets: signatures.standard(body, message_id, timestamp, signature,
                                                    secrets)), message_id, "standard_webhooks"

    def _secret_name(self, connection: str | None) -> str:
        if connection is None:
            return app_secret_name(self.provider)
        name = connection_secret_name(connection)
        if name is None:
            raise NotFound("no such connection", key=self._key("unknown_connection"))
        return name

    def _no_secret(self, connection: str | None, name: str) -> None:
        if connection is not None:
            raise NotFound("no such connection", key=self._key("unknown_connection"))
        raise ConfigError(f"secret {name!r} is not set", key=self._key("secret_missing"))

    # ---- 4. dedupe, 5. parse, 6. publish ------------------------------------------------
    def _accept(self, ports: Ports, request: Any, body: bytes, connection: str | None,
                verified: tuple[str | None, str]) -> Response:
        signed_id, scheme = verified
        delivery = deliveries.normalize_id(
            signed_id or self._delivery_header(request), body)
        event = _header(request, self.spec.event_header) or ""
        doc = deliveries.doc_id(self.provider, delivery, connection)
        fields = {"provider": self.provider, "delivery": delivery, "event": event,
                  "connection": connection}
        claimed = deliveries.claim(ports.business, ports.clock, doc, fields)
        if claimed is None:
            log.info(self._key("duplicate"), extra={"fields": fields})
            return json_response({"status": "duplicate"}, 202)
        try:
            payload = self._parse(body)
            self._publish(ports, request, {**fields, "verified_by": scheme,
                                           "received_at": claimed.received_at}, payload)
        except BaseException:
            self._release(ports, doc, claimed.owner)
            raise
        log.info(self._key("accepted"),
                 extra={"fields": {**fields, "reclaimed": claimed.reclaimed}})
        return json_response({"status": "accepted"}, 202)

    def _release(self, ports: Ports, doc: str, owner: str) -> None:
        """Best effort: a claim that cannot be deleted now is recovered after the lease."""
        try:
            deliveries.release(ports.business, doc, owner)
        except KeywayError:
            log.warning(self._key("release_failed"), extra={"fields": {"delivery": doc}})

    def _delivery_header(self, request: Any) -> str | None:
        """The delivery id header, prefixed by its scope (``<hook uuid>.<request uuid>``)."""
        delivery = _header(request, self.spec.delivery_header)
        scope = _header(request, self.profile.delivery_scope)
        if delivery is None or scope is None:
            return delivery
        return f"{scope.strip('{}')}.{delivery.strip('{}')}"

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            raise InvalidInput("the body is not a JSON object", key=self._key("invalid_json"))
        return payload

    def _publish(self, ports: Ports, request: Any, fields: dict[str, Any],
                 payload: dict[str, Any]) -> str:
        headers = {name: value for name, header in self.profile.forwarded.items()
                   if (value := _header(request, header)) is not None}
        message = {**fields, "headers": headers, "payload": payload}
        sender = f"webhook-{self.provider}"
        data, attributes = messages.encode(sender, "webhook.event", message)
        if len(data) > messages.MAX_BODY_BYTES:  # rare: encode the small stand-in instead
            data, attributes = messages.encode(sender, "webhook.event", {
                **message, "payload": None, "payload_omitted": True,
                "subject": subject(payload)})
        return messages.publish_encoded(ports.bus, f"events-{self.provider}", data, attributes)


def _bearer(request: Any) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None without one)."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def subject(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What an event is about, kept when its payload is too large to publish: the ``id`` (or,
    on Bitbucket, the ``uuid``) of its repository, project or installation."""
    found: dict[str, Any] = {}
    for field in ("repository", "project", "installation"):
        value = payload.get(field)
        if isinstance(value, dict) and isinstance(value.get("id"), int | str):
            found[field] = value["id"]
        elif isinstance(value, dict) and isinstance(value.get("uuid"), str):
            found[field] = value["uuid"]
    if "project" not in found and isinstance(payload.get("project_id"), int | str):
        found["project"] = payload["project_id"]
    return found


def receiver(provider: str) -> Receiver:
    """The handler for ``http_function(f"webhook-{provider}", receiver(provider))``."""
    return Receiver(provider)
