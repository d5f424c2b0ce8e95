"""The ``keyway`` command for operators and local use.

    keyway run [--backend embedded|emulator]     serve the local stack (what `make run` does)
    keyway bus dead-letters TOPIC [--max N]      show dead-lettered messages (ids, attributes)
    keyway bus replay TOPIC [--max N]            put dead letters back on their topic

Configuration comes from the environment (README.md's table); a bad variable exits 2 with a
message naming it.
"""

from __future__ import annotations

import argparse
import json
import sys

from shared import bootstrap, bus_ops, policy
from shared.config import BACKENDS, Config
from shared.errors import ConfigError, KeywayError
from shared.topology import subscription_specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyway", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve every function locally")
    run.add_argument("--backend", choices=[b for b in BACKENDS if b != "gcp"], default=None)
    bus = sub.add_parser("bus", help="inspect and replay dead letters")
    bus_sub = bus.add_subparsers(dest="bus_command", required=True)
    for name in ("dead-letters", "replay"):
        cmd = bus_sub.add_parser(name)
        cmd.add_argument("topic", choices=sorted(policy.ROUTES))
        cmd.add_argument("--max", type=int, default=100)
    return parser


def _spec(topic: str):
    return next(s for s in subscription_specs() if s.topic == topic)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from keyway import runner

            runner.run(args.backend or Config.from_env().backend)
            return 0
        ports = bootstrap.ports()
        spec = _spec(args.topic)
        if args.bus_command == "dead-letters":
            for message in bus_ops.list_dead_letters(ports.bus, spec, args.max):
                print(json.dumps({"message_id": message.message_id,
                                  "attributes": dict(message.attributes),
                                  "bytes": len(message.data)}))
        else:
            count = bus_ops.replay_dead_letters(ports.bus, spec, args.max)
            print(f"replayed {count} message(s) onto {args.topic}")
        return 0
    except ConfigError as e:
        print(f"keyway: configuration error: {e.detail}", file=sys.stderr)
        return 2
    except KeywayError as e:
        print(f"keyway: {e.key}: {e.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
