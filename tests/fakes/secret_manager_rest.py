"""A fake Secret Manager v1 REST server: create and delete secrets, add, list and access
versions.

``latest`` is the most recently created version whatever its state, as in Secret Manager; a
disabled version answers 400 FAILED_PRECONDITION and a missing one 404. Listing versions
honours ``filter=state:ENABLED``. CRC32C on the way in is
checked; on the way out ``dataCrc32c`` is set. Test knobs: ``unavailable`` (503 everything),
``corrupt_responses`` (flip a bit of the returned payload without fixing its checksum).
"""

from __future__ import annotations

import re
from typing import Any

from tests import fakes
from tests.fakes import FakeGoogleServer, Json

_ID = r"[^/:]+"
_SECRET_ID = re.compile(r"[a-zA-Z0-9_-]{1,255}")


class FakeSecretManager(FakeGoogleServer):
    """In-memory secrets behind the Secret Manager REST paths."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, Json] = {}

    def disable_version(self, secret: str, version: str) -> None:
        """Disable ``projects/P/secrets/S`` version ``version`` (what the console would do)."""
        with self.lock:
            self.secrets[secret]["versions"][version]["state"] = "DISABLED"

    def _secret(self, name: str) -> Json:
        if name not in self.secrets:
            raise fakes.not_found(f"Secret [{name}] not found or has no versions.")
        return self.secrets[name]

    def create_secret(self, query: Json, body: Json, parent: str) -> Json:
        secret_id = query.get("secretId", "")
        if not _SECRET_ID.fullmatch(secret_id):
            raise fakes.invalid_argument("Invalid secret id.")
        if not isinstance(body.get("replication"), dict) or not body["replication"]:
            raise fakes.invalid_argument("Secret.replication is required.")
        name = f"{parent}/secrets/{secret_id}"
        if name in self.secrets:
            raise fakes.already_exists(f"Secret [{name}] already exists.")
        self.secrets[name] = {"versions": {}, "replication": body["replication"],
                              "created": fakes.timestamp()}
        return {"name": name, "replication": body["replication"], "createTime": fakes.timestamp()}

    def add_version(self, query: Json, body: Json, parent: str) -> Json:
        secret = self._secret(parent)
        payload = body.get("payload") or {}
        data = fakes.b64decode(payload.get("data"), "payload.data")
        if not data or len(data) > 64 * 1024:
            raise fakes.invalid_argument("Secret payload must be 1 byte to 64 KiB.")
        fakes.check_crc(data, payload.get("dataCrc32c"), "payload.data_crc32c")
        vid = str(len(secret["versions"]) + 1)
        secret["versions"][vid] = {"data": data, "state": "ENABLED", "created": fakes.timestamp()}
        return {"name": f"{parent}/versions/{vid}", "state": "ENABLED",
                "createTime": secret["versions"][vid]["created"]}

    def access(self, query: Json, body: Json, name: str, version: str) -> Json:
        versions = self._secret(name)["versions"]
        if version == "latest":  # Secret Manager's alias: the newest version, whatever its state
            if not versions:
                raise fakes.not_found(f"Secret [{name}] not found or has no versions.")
            version = str(max(int(v) for v in versions))
        entry = versions.get(version)
        if entry is None:
            raise fakes.not_found(f"Secret Version [{name}/versions/{version}] not found.")
        if entry["state"] != "ENABLED":
            raise fakes.failed_precondition(
                f"Secret Version [{name}/versions/{version}] is disabled.")
        data = entry["data"]
        returned = self.returned(data)
        return {"name": f"{name}/versions/{version}",
                "payload": {"data": fakes.b64encode(returned),
                            "dataCrc32c": str(fakes.crc32c(data))}}

    def delete_secret(self, query: Json, body: Json, name: str) -> Json:
        """Delete a secret and every version (Secret Manager answers ``Empty``)."""
        if name not in self.secrets:
            raise fakes.not_found(f"Secret [{name}] not found.")
        del self.secrets[name]
        return {}

    def list_versions(self, query: Json, body: Json, parent: str) -> Json:
        """Newest first, one page; supports the ``state:ENABLED`` style filter only."""
        versions = self._secret(parent)["versions"]
        wanted = query.get("filter", "")
        if wanted and not wanted.startswith("state:"):
            raise fakes.invalid_argument("This fake filters on state only.")
        found = [
            {"name": f"{parent}/versions/{vid}", "state": entry["state"]}
            for vid, entry in sorted(versions.items(), key=lambda kv: -int(kv[0]))
            if not wanted or entry["state"] == wanted.removeprefix("state:")
        ]
        return {"versions": found, "totalSize": len(found)}

    routes: Any = [
        ("POST", re.compile(rf"/v1/(?P<parent>projects/{_ID})/secrets"), create_secret),
        ("POST", re.compile(rf"/v1/(?P<parent>projects/{_ID}/secrets/{_ID}):addVersion"),
         add_version),
        ("DELETE", re.compile(rf"/v1/(?P<name>projects/{_ID}/secrets/{_ID})"), delete_secret),
        ("GET", re.compile(rf"/v1/(?P<parent>projects/{_ID}/secrets/{_ID})/versions"),
         list_versions),
        ("GET", re.compile(rf"/v1/(?P<name>projects/{_ID}/secrets/{_ID})/versions/"
                           rf"(?P<version>{_ID}):access"), access),
    ]
