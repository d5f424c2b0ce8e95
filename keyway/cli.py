"""The ``keyway`` command for operators and local use.

    keyway run [--backend embedded|emulator]     serve the local stack (what `make run` does)
    keyway bus dead-letters TOPIC [--max N]      show dead-lettered messages (ids, attributes)
    keyway bus replay TOPIC [--max N]            put dead letters back on their topic
    keyway keys list COMPONENT                   data-key versions of vault-P
    keyway keys rotate COMPONENT                 add a data-key version new writes use
    keyway keys reencrypt COMPONENT              rewrite vault-P's records under the newest key
    keyway keys retire COMPONENT VERSION [--force] [--by OPERATOR]
                                                 make an old version unreadable; refused while
                                                 records use it, unless --force (audited)
    keyway audit verify [CHAIN] [--checkpoints FILE]
                                                 check the audit hash chains against their
                                                 checkpoints (and those of a log export);
                                                 exit 1 if broken
    keyway migrate actions                       move action documents from their old ids to
                                                 the per-tenant ones; exit 1 if any is left
                                                 for an operator (no tenant, id taken)
    keyway connections status [--tenant T] [--watch] [--interval S]
                                                 one line per connection with its health; while
                                                 it syncs a progress bar per list and the ETA
    keyway hosts add|list|remove …               registered self-hosted hosts and their OAuth
                                                 clients (keyway/hosts_cli.py)
    keyway dev token --tenant T --user U --role admin|member [--scope S ...] [--ttl SECONDS]
                                                 print a bearer token from the local issuer

Configuration comes from the environment (docs/CONFIGURATION.md); a bad variable exits 2 with a
message naming it. Output never contains a token or key.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from keyway import hosts_cli
from shared import bootstrap, bus_ops, policy
from shared.config import BACKENDS, Config
from shared.errors import ConfigError, KeywayError
from shared.topology import subscription_specs

VAULTS = [f"vault-{p}" for p in policy.PROVIDERS]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyway", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve every function locally")
    run.add_argument("--backend", choices=[b for b in BACKENDS if b != "gcp"], default=None)
    bus = sub.add_parser("bus", help="inspect and replay dead letters")
    bus_sub = bus.add_subparsers(dest="action", required=True)
    for name in ("dead-letters", "replay"):
        cmd = bus_sub.add_parser(name)
        cmd.add_argument("topic", choices=sorted(policy.ROUTES))
        cmd.add_argument("--max", type=int, default=100)
    keys = sub.add_parser("keys", help="data-key versions, rotation, re-encryption")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    for name in ("list", "rotate", "reencrypt", "retire"):
        cmd = keys_sub.add_parser(name)
        cmd.add_argument("component", choices=VAULTS)
        if name == "retire":
            cmd.add_argument("version", type=int)
            cmd.add_argument("--force", action="store_true",
                             help="retire even though records still use it (they become "
                                  "unreadable; audited)")
            cmd.add_argument("--by", default=None,
                             help="who retires, for the audit chain (default: $USER)")
    audit = sub.add_parser("audit", help="verify the audit hash chains")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify")
    verify.add_argument("chain", nargs="?", default=None)
    verify.add_argument("--checkpoints", type=argparse.FileType("r"), default=None,
                        help="a log export holding audit.checkpoint lines")
    migrate = sub.add_parser("migrate", help="data migrations after an upgrade")
    migrate.add_argument("step", choices=["actions"])
    conns = sub.add_parser("connections", help="connections and their sync progress")
    conns_sub = conns.add_subparsers(dest="action", required=True)
    status = conns_sub.add_parser("status", help="health, progress bars and ETA")
    status.add_argument("--tenant", default=None, help="only this tenant's connections")
    status.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    status.add_argument("--interval", type=_positive, default=2.0,
                        help="seconds between redraws with --watch (default 2)")
    hosts_cli.add_parser(sub)
    dev = sub.add_parser("dev", help="local development helpers")
    dev_sub = dev.add_subparsers(dest="action", required=True)
    token = dev_sub.add_parser("token", help="print a bearer token for the local api")
    token.add_argument("--tenant", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--role", choices=["admin", "member"], required=True)
    token.add_argument("--scope", action="append", default=None,
                       help="repeat for several; default: every scope")
    token.add_argument("--ttl", type=int, default=3600)
    return parser


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value > 3600:
        raise argparse.ArgumentTypeError("must be a number of seconds, above 0, at most 3600")
    return value


def _connections(args: argparse.Namespace) -> int:
    from keyway import connstatus

    ports = bootstrap.ports()
    if not args.watch:
        print("\n".join(connstatus.render(ports, args.tenant)))
        return 0
    return connstatus.watch(lambda: connstatus.render(ports, args.tenant), args.interval)


def _dev(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from keyway.stackfile import running_stack
    from shared.api.authn import local_issuer

    config = Config.from_env()
    if not config.local_mode:
        print("keyway: dev tokens exist only in local mode", file=sys.stderr)
        return 2
    stack = running_stack(config.state_dir)
    if stack is None:
        print(f"keyway: no running stack serves from {config.state_dir}; this token is for "
              f"issuer {config.auth_issuer} and a stack started with another PORT or "
              "KEYWAY_STATE_DIR will refuse it", file=sys.stderr)
    elif (stack.auth_issuer, stack.auth_audience) != (config.auth_issuer, config.auth_audience):
        if os.environ.get("KEYWAY_AUTH_ISSUER") or os.environ.get("KEYWAY_AUTH_AUDIENCE"):
            print(f"keyway: the stack running from {config.state_dir} (pid {stack.pid}) accepts "
                  f"issuer {stack.auth_issuer} and audience {stack.auth_audience}, not the "
                  "KEYWAY_AUTH_ISSUER/KEYWAY_AUTH_AUDIENCE set here", file=sys.stderr)
            return 2
        config = replace(config, auth_issuer=stack.auth_issuer, auth_audience=stack.auth_audience)
    issuer = local_issuer(config, bootstrap.ports(config).clock)
    kwargs = {"scopes": args.scope} if args.scope else {}
    print(issuer.issue(args.tenant, args.user, args.role, ttl=args.ttl, **kwargs))
    return 0


def _bus(args: argparse.Namespace) -> int:
    ports = bootstrap.ports()
    spec = next(s for s in subscription_specs() if s.topic == args.topic)
    if args.action == "dead-letters":
        found = bus_ops.list_dead_letters(ports.bus, spec, args.max)
        for message in found:
            print(json.dumps({"message_id": message.message_id,
                              "attributes": dict(message.attributes),
                              "bytes": len(message.data)}))
        if not found:
            print(f"no dead letters on {args.topic}", file=sys.stderr)
    else:
        count = bus_ops.replay_dead_letters(ports.bus, spec, args.max)
        print(f"replayed {count} message(s) onto {args.topic}")
    return 0


def _operator(by: str | None) -> str:
    """Who runs an audited operator command: ``operator:<--by or $USER>``."""
    return f"operator:{by or os.environ.get('USER') or getpass.getuser()}"


def _keys(args: argparse.Namespace) -> int:
    from shared.vault import keys
    from shared.vault.handlers import service

    vault = service(args.component.removeprefix("vault-"), bootstrap.ports())
    if args.action == "list":
        primary = vault.keyring.primary_version()
        for version, meta in sorted(vault.keyring.versions().items()):
            print(json.dumps({"version": version, "primary": version == primary,
                              "state": meta.get("state"),
                              "created_at": meta.get("created_at"),
                              "encryptions_reserved": meta.get("encryptions_reserved")}))
    elif args.action == "rotate":
        print(f"{args.component}: data key version {vault.keyring.rotate()} is now primary")
    elif args.action == "retire":
        in_use = keys.retire(vault, args.version, _operator(args.by), force=args.force)
        lost = f" ({sum(in_use.values())} record(s) now unreadable)" if in_use else ""
        print(f"{args.component}: data key version {args.version} retired{lost}")
    else:
        def progress(done: int, total: int) -> None:
            print(f"\r{args.component}: re-encrypted {done}/{total}", end="", flush=True)

        count = sum(1 for _ in vault.reencrypt(progress))
        print(f"\n{args.component}: {count} record(s) now under the newest data key")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from shared.audit import chains, from_log_lines, verify

    ports = bootstrap.ports()
    anchors = from_log_lines(args.checkpoints) if args.checkpoints else []
    names = [args.chain] if args.chain else sorted(
        set(chains(ports.business)) | {a.chain for a in anchors})
    broken = 0
    for name in names:
        result = verify(ports.business, ports.secrets, name, checkpoints=anchors)
        broken += not result.ok
        status = ("ok" if result.ok else
                  f"BROKEN ({result.reason}) at seq {result.seq}: {result.problem}")
        print(f"{name}: {result.checked} entries checked, {status}")
    return 1 if broken else 0


def _migrate(args: argparse.Namespace) -> int:
    from keyway import migrate

    outcomes = migrate.migrate_actions(bootstrap.ports().business)
    for outcome in outcomes:
        print(json.dumps({"action": outcome.old_id, "outcome": outcome.result}))
    left = sum(o.result in migrate.LEFT for o in outcomes)
    print(f"actions: {len(outcomes) - left} moved, {left} left for an operator")
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from keyway import runner

            runner.run(args.backend or Config.from_env().backend)
            return 0
        handlers = {"bus": _bus, "keys": _keys, "audit": _audit, "migrate": _migrate,
                    "connections": _connections, "dev": _dev,
                    "hosts": lambda a: hosts_cli.run(a, _operator(getattr(a, "by", None)))}
        return handlers[args.command](args)
    except ConfigError as e:
        print(f"keyway: configuration error: {e.detail}", file=sys.stderr)
        return 2
    except KeywayError as e:
        print(f"keyway: {e.key}: {e.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
