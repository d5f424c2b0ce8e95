"""``keyway hosts``: operators register the self-hosted hosts (GitHub Enterprise Server,
self-managed GitLab) a tenant may connect, each with the OAuth application made on that host
(:mod:`shared.hosts.registry`; the same records ``/api/v1/hosts`` manages).

    keyway hosts add --tenant T --provider github|gitlab --base-url URL --client-id ID [--by NAME]
                     the client secret is read from stdin (prompted for on a terminal),
                     never from the command line, and never printed
    keyway hosts list --tenant T
    keyway hosts remove --tenant T HOST_ID      refused while a connection uses it
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from shared import bootstrap
from shared.config import Config
from shared.hosts import registry as hosts
from shared.providers import registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hosts", help="registered self-hosted hosts and their OAuth clients")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a host (client secret on stdin)")
    add.add_argument("--tenant", required=True)
    add.add_argument("--provider", required=True,
                     choices=[n for n, spec in registry.load().items() if spec.self_hosted])
    add.add_argument("--base-url", required=True)
    add.add_argument("--client-id", required=True)
    add.add_argument("--by", default=None, help="who registers (default: $USER)")
    listing = actions.add_parser("list", help="a tenant's hosts (never a secret)")
    listing.add_argument("--tenant", required=True)
    remove = actions.add_parser("remove", help="remove a host and its client secret")
    remove.add_argument("--tenant", required=True)
    remove.add_argument("host")


def _secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("client secret: ")
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, operator: str) -> int:
    config = Config.from_env()
    ports = bootstrap.ports(config)
    if args.action == "add":
        host = hosts.register(ports, tenant=args.tenant, provider=args.provider,
                              base_url=args.base_url, client_id=args.client_id,
                              client_secret=_secret(), created_by=operator,
                              local_mode=config.local_mode)
        print(json.dumps(host.view()))
    elif args.action == "list":
        for host in hosts.list_hosts(ports, args.tenant):
            print(json.dumps(host.view()))
    else:
        host = hosts.remove(ports, args.tenant, args.host)
        print(f"removed {host.id} ({host.provider} {host.base_url})")
    return 0
