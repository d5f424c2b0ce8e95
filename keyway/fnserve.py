"""One function in a process of its own, as ``make run BACKEND=emulator`` runs each of them.

    python -m keyway.fnserve COMPONENT PORT

The function's functions-framework app, served on ``127.0.0.1:PORT`` by functions-framework's
own server (gunicorn, as ``python -m functions_framework`` would), with one difference: a
Pub/Sub-triggered function's app sits behind :func:`keyway.wsgi.push_guard`, so its own port
asks for the local push credential (secret ``local-push-token``) exactly as the runner's
public port does. A request without it is a 401 problem+json ``runner.push_unauthorized`` and
reaches no handler — whoever finds the loopback port. HTTPS functions are served as they are.

The credential is read from the local secret source at start (the state directory's secrets
file, or ``KEYWAY_SECRET_LOCAL_PUSH_TOKEN``); the runner made it at first start.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from keyway import wsgi
from keyway.firststart import push_token
from shared import bootstrap
from shared.components import COMPONENTS, Component

ROOT = Path(__file__).resolve().parent.parent


def signature(component: Component) -> str:
    return "http" if component.trigger == "http" else "cloudevent"


def source(component: Component) -> str:
    return str(ROOT / "functions" / component.name / "main.py")


def create_app(component: Component, token: bytes):
    """The component's functions-framework (Flask) app, its WSGI callable behind the push
    guard when the component is Pub/Sub-triggered (:func:`keyway.wsgi.guarded`)."""
    import functions_framework

    app = functions_framework.create_app(component.entry_point, source(component),
                                         signature(component))
    app.wsgi_app = wsgi.guarded(component.name, app.wsgi_app, token)
    return app


def spawn(component: Component, port: int, env: dict[str, str], log_path: Path
          ) -> subprocess.Popen:
    """Start ``python -m keyway.fnserve`` for ``component`` on ``port`` (its own session, so
    the runner can stop it and what it started), output appended to ``log_path``."""
    argv = [sys.executable, "-m", "keyway.fnserve", component.name, str(port)]
    with open(log_path, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=env | {"K_SERVICE": component.name},
                                start_new_session=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMPONENTS or not argv[1].isdigit():
        sys.stderr.write("usage: python -m keyway.fnserve COMPONENT PORT\n")
        return 2
    # functions-framework's server for its own apps (gunicorn), as its CLI starts it.
    from functions_framework._http import create_server

    app = create_app(COMPONENTS[argv[0]], push_token(bootstrap.ports()))
    create_server(app, False).run("127.0.0.1", int(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
