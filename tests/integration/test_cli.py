"""The operator commands, run as a real `python -m keyway` process against a state dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared import bootstrap
from shared.config import Config
from shared.crypto import channels
from shared.topology import subscription_specs
from shared.vault.endpoints import UnconfiguredEndpoint
from shared.vault.service import VaultService
from shared.vault.tokens import TokenSet

ROOT = Path(__file__).resolve().parents[2]


def keyway(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEYWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("KEYWAY_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "keyway", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def seeded(state: Path, count: int = 3):
    ports = bootstrap.build(Config.from_env({"KEYWAY_STATE_DIR": str(state)}))
    ports.keys.ensure_key("vault-github")
    channels.ensure(ports.secrets)
    vault = VaultService("github", ports, UnconfiguredEndpoint("github"))
    tokens = [TokenSet(f"gho_{i}" + "K" * 36, f"ghr_{i}" + "R" * 36,
                       datetime.now(UTC) + timedelta(hours=8)) for i in range(count)]
    for i, t in enumerate(tokens):
        vault.store_app_token("t-1", f"conn-{i}", "admin", t)
    return ports, vault, tokens


def test_rotate_reencrypt_retire_from_the_command_line(tmp_path):
    state = tmp_path / "state"
    ports, vault, tokens = seeded(state)
    rotated = keyway(state, "keys", "rotate", "vault-github")
    assert rotated.returncode == 0, rotated.stderr
    assert "version 2 is now primary" in rotated.stdout
    moved = keyway(state, "keys", "reencrypt", "vault-github")
    assert moved.returncode == 0 and "3/3" in moved.stdout and "3 record(s)" in moved.stdout
    retired = keyway(state, "keys", "retire", "vault-github", "1")
    assert retired.returncode == 0, retired.stderr
    listing = keyway(state, "keys", "list", "vault-github").stdout
    assert '"state": "retired"' in listing and '"state": "active"' in listing
    rows = {r["version"]: r for r in map(json.loads, listing.splitlines())}
    assert rows[2]["primary"] is True and rows[1]["primary"] is False
    fresh = VaultService("github", ports, UnconfiguredEndpoint("github"))
    for i, t in enumerate(tokens):
        doc = ports.vault.get("app_tokens", f"conn-{i}")
        assert fresh.codec.key_versions(doc) == {2}
        floor = fresh.anchors.floor("app_tokens", f"conn-{i}")
        assert floor == 2  # rewritten at the next generation, and anchored there
        stored = fresh.codec.decode("app_tokens", f"conn-{i}", doc, floor)
        assert stored.access_token == t.access_token
    for out in (rotated, moved, retired):
        assert not any(t.access_token in out.stdout + out.stderr for t in tokens)


def test_retiring_the_primary_is_refused(tmp_path):
    state = tmp_path / "state"
    seeded(state, 1)
    refused = keyway(state, "keys", "retire", "vault-github", "1")
    assert refused.returncode == 1 and "conflict" in refused.stderr.lower()


def test_audit_verify_detects_an_edited_entry(tmp_path):
    state = tmp_path / "state"
    ports, vault, _ = seeded(state, 2)
    ok = keyway(state, "audit", "verify")
    assert ok.returncode == 0 and "vault-github: 2 entries checked, ok" in ok.stdout
    entry = ports.business.query("audit_entries")[0]
    edited = {**entry.data, "outcome": "nothing happened"}
    ports.business.put("audit_entries", entry.id, edited)
    broken = keyway(state, "audit", "verify", "vault-github")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout


def test_a_bad_variable_exits_2_naming_it(tmp_path):
    env_state = tmp_path / "state"
    result = subprocess.run([sys.executable, "-m", "keyway", "audit", "verify"], cwd=ROOT,
                            env={**os.environ, "KEYWAY_STATE_DIR": str(env_state),
                                 "KEYWAY_BACKEND": "mainframe", "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "KEYWAY_BACKEND" in result.stderr


def test_audit_verify_reports_a_deleted_chain_with_its_reason(tmp_path):
    state = tmp_path / "state"
    ports, _, _ = seeded(state, 2)
    for name in ("audit_entries", "audit_heads"):
        for snapshot in ports.business.query(name):
            ports.business.delete(name, snapshot.id)
    broken = keyway(state, "audit", "verify")
    assert broken.returncode == 1
    assert "vault-github: 0 entries checked, BROKEN (audit.chain_deleted)" in broken.stdout


def test_audit_verify_reads_checkpoints_from_a_log_export(tmp_path):
    state = tmp_path / "state"
    ports, _, _ = seeded(state, 3)
    head = ports.business.get("audit_heads", "vault-github")
    export = tmp_path / "checkpoints.json"
    export.write_text(json.dumps([{"jsonPayload": {
        "message": "audit.checkpoint", "chain": "vault-github", "seq": head["seq"],
        "head": head["mac"]}}]))
    assert keyway(state, "audit", "verify", "--checkpoints", str(export)).returncode == 0
    last = f"vault-github-{head['seq']:012d}"
    previous = ports.business.get("audit_entries", f"vault-github-{head['seq'] - 1:012d}")
    ports.business.delete("audit_entries", last)
    ports.business.put("audit_heads", "vault-github",
                       {"seq": head["seq"] - 1, "mac": previous["mac"]})
    ports.business.delete("audit_checkpoints", "vault-github")  # a careful attacker
    broken = keyway(state, "audit", "verify", "--checkpoints", str(export))
    assert broken.returncode == 1 and "BROKEN (audit.head_rolled_back)" in broken.stdout


def test_an_empty_dead_letter_listing_says_so(tmp_path):
    state = tmp_path / "state"
    ports, _, _ = seeded(state, 1)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    listed = keyway(state, "bus", "dead-letters", "sync-requests-github")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ""
    assert "no dead letters on sync-requests-github" in listed.stderr


def test_dev_token_follows_the_running_stack_or_says_none_runs(tmp_path):
    """A stack started with another PORT has another issuer URL: ``dev token`` reads the
    stack file and mints for that issuer; with no stack it still mints, and says for which."""
    import jwt

    state = tmp_path / "state"
    state.mkdir()
    alone = keyway(state, "dev", "token", "--tenant", "t1", "--user", "u1", "--role", "admin")
    assert alone.returncode == 0 and "no running stack serves from" in alone.stderr
    assert jwt.decode(alone.stdout.strip(), options={"verify_signature": False})["iss"] == (
        "http://127.0.0.1:8080/api/local-issuer")
    stack = {"pid": os.getpid(), "port": 9123, "public_url": "http://127.0.0.1:9123",
             "auth_issuer": "http://127.0.0.1:9123/api/local-issuer",
             "auth_audience": "keyway-api"}
    (state / "stack.json").write_text(json.dumps(stack))
    followed = keyway(state, "dev", "token", "--tenant", "t1", "--user", "u1", "--role", "admin")
    assert followed.returncode == 0, followed.stderr
    claims = jwt.decode(followed.stdout.strip(), options={"verify_signature": False})
    assert claims["iss"] == stack["auth_issuer"]
    (state / "stack.json").write_text(json.dumps({**stack, "pid": _dead_pid()}))
    stale = keyway(state, "dev", "token", "--tenant", "t1", "--user", "u1", "--role", "admin")
    assert "no running stack serves from" in stale.stderr


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_an_operator_registers_lists_and_removes_a_host_without_the_secret_on_screen(tmp_path):
    state, secret = tmp_path / "state", "operator-typed-secret-" + "o" * 20
    env = {**os.environ, "KEYWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("KEYWAY_BACKEND", None)

    def hosts(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "keyway", "hosts", *args], cwd=ROOT,
                              env=env, input=stdin, capture_output=True, text=True,
                              timeout=120, check=False)

    added = hosts("add", "--tenant", "acme", "--provider", "gitlab", "--base-url",
                  "http://127.0.0.2:8929", "--client-id", "gl-onprem", "--by", "ops-1",
                  stdin=secret + "\n")
    assert added.returncode == 0, added.stderr
    host = json.loads(added.stdout)
    assert host["client_id"] == "gl-onprem" and host["created_by"] == "operator:ops-1"
    refused = hosts("add", "--tenant", "acme", "--provider", "gitlab", "--base-url",
                    "https://10.0.0.8", "--client-id", "x", stdin=secret + "\n")
    assert refused.returncode == 1 and "ssrf.refused" in refused.stderr
    listed = hosts("list", "--tenant", "acme")
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [host]
    ports = bootstrap.build(Config.from_env({"KEYWAY_STATE_DIR": str(state)}))
    name = ports.business.get("hosts", host["id"])["secret_name"]
    assert ports.secrets.access(name).decode() == secret
    removed = hosts("remove", "--tenant", "acme", host["id"])
    assert removed.returncode == 0 and hosts("list", "--tenant", "acme").stdout == ""
    for out in (added, refused, listed, removed):
        assert secret not in out.stdout + out.stderr
