"""The local stack behind ``make run``: every function on one port, fed by the bus.

* ``embedded`` — one process: every function's functions-framework app is mounted under
  ``/<function-name>``; a pump thread pulls each subscription from the SQLite bus and POSTs the
  message to its subscriber exactly as a Pub/Sub push would (functions-framework turns it into
  a CloudEvent), with the local push credential (:func:`keyway.wsgi.push_guard`: a push
  endpoint refuses a request without it, as Cloud Run refuses a push without Pub/Sub's OIDC
  token); a ticker publishes ``refresh.tick`` like Cloud Scheduler.
* ``emulator`` — production topology: the official Firestore and Pub/Sub emulators (started
  here unless ``FIRESTORE_EMULATOR_HOST``/``PUBSUB_EMULATOR_HOST`` point at running ones), one
  functions-framework process per function (:mod:`keyway.fnserve`) and a front proxy on the
  main port; the emulator's push subscriptions deliver through that proxy, their endpoint URL
  carrying the push credential as ``?token=`` (the emulator can set nothing else on a push).
  Each Pub/Sub-triggered function's own loopback port requires the credential too; the proxy
  passes it on in ``X-Keyway-Push-Token``.

Sandbox: every provider with a built-in simulator (GitHub, GitLab, Bitbucket, Jira Cloud) and
no ``KEYWAY_<PROVIDER>_CLIENT_ID`` gets its simulator started on loopback, seeded, with an OAuth
client registered for ``<public_url>/oauth-<provider>/callback`` — so a newcomer can connect,
sync and browse with no internet and no provider account. Each simulator shows its sign-in page
(two seeded accounts) instead of signing anyone in by itself, so an admin's connection and a
member's identity can be different accounts and a comment's author shows who acted. The
sandbox GitHub also offers the GitHub App flow (``{"provider": "github", "github_app": true}``):
a sandbox app whose private key is made at first start (secret ``github-app-private-key``),
installed on the seeded organisation (all its repositories, private ones included), with
``KEYWAY_GITHUB_APP_ID`` and ``KEYWAY_GITHUB_APP_SLUG`` set — unless an app id is configured
already. Each simulator's port and the tokens it issued are kept in ``<state_dir>/sandbox.json``
(:mod:`keyway.sandbox_state`), so connections survive a restart.

Ctrl-C (SIGINT) or SIGTERM stops every process this runner started.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from keyway import emulators, fnserve, sandbox_state, wsgi
from keyway.firststart import ensure_github_app_key, ensure_local_state, push_token
from keyway.simulators import (
    BitbucketSimulator,
    GitHubSimulator,
    GitLabSimulator,
    JiraSimulator,
    Simulator,
)
from keyway.stackfile import remove_stack_file, write_stack_file
from shared import bootstrap, messages
from shared.clock import isoformat
from shared.components import COMPONENTS
from shared.config import Config
from shared.errors import RetryableError
from shared.log import configure, get_logger
from shared.ports import Message, Ports, SecretSource
from shared.providers import registry
from shared.topology import subscription_specs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MIN_BACKOFF, LOCAL_MAX_BACKOFF = 1.0, 60.0
log = get_logger("keyway.runner")


def push_body(project: str, subscription: str, message: Message) -> dict:
    """The JSON body Pub/Sub push sends, which functions-framework converts to a CloudEvent."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": isoformat(message.publish_time),
        },
        "subscription": f"projects/{project}/subscriptions/{subscription}",
        "deliveryAttempt": message.delivery_attempt,
    }


class Runner:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.processes: list[subprocess.Popen] = []
        self.emulators: emulators.Emulators | None = None
        self.server = None
        self.session = requests.Session()
        self.simulators: dict[str, Simulator] = {}
        self.stop_requested = False

    def request_stop(self, *_: object) -> None:
        """The SIGTERM handler. It only sets a flag the main loop polls: a handler that took a
        lock (``Event.set``) could interrupt the main thread while it holds that same lock
        (inside ``Event.wait``) and deadlock the shutdown."""
        self.stop_requested = True

    # -- shared pieces ----------------------------------------------------------------------
    def _ticker(self, ports: Ports) -> None:
        while not self.stop_event.is_set():
            body = {"tick_time": isoformat(ports.clock.now())}
            try:
                messages.publish(ports.bus, "cloud-scheduler", "refresh-ticks",
                                 "refresh.tick", body)
            except RetryableError as e:
                log.warning("runner.tick_failed", extra={"fields": {"detail": e.detail}})
            self._save_sandbox()
            self.stop_event.wait(self.config.tick_seconds)

    def _serve(self, app) -> None:
        self.server = make_server("127.0.0.1", self.config.port, app, threaded=True,
                                  request_handler=wsgi.RequestLog)
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()
        log.info("runner.listening", extra={"fields": {
            "url": f"http://127.0.0.1:{self.config.port}", "backend": self.config.backend}})

    # -- embedded ---------------------------------------------------------------------------
    def start_embedded(self) -> None:
        import functions_framework

        ports = bootstrap.ports(self.config)
        ensure_local_state(ports)
        specs = subscription_specs(min_backoff=LOCAL_MIN_BACKOFF, max_backoff=LOCAL_MAX_BACKOFF)
        for spec in specs:
            ports.bus.ensure_subscription(spec)
        apps = {c.name: functions_framework.create_app(c.entry_point, fnserve.source(c),
                                                       fnserve.signature(c))
                for c in COMPONENTS.values()}
        token = push_token(ports)
        self._serve(wsgi.mounted("embedded", apps, self._sandbox(), push_token=token))
        threading.Thread(target=self._pump, args=(ports, specs, token), name="pump",
                         daemon=True).start()
        threading.Thread(target=self._ticker, args=(ports,), name="ticker", daemon=True).start()

    def _pump(self, ports: Ports, specs, token: bytes) -> None:
        while not self.stop_event.is_set():
            delivered = 0
            for spec in specs:
                subscriber = next(c for c in COMPONENTS.values() if spec.topic in c.topics)
                url = (f"http://127.0.0.1:{self.config.port}/{subscriber.name}"
                       f"/projects/{self.config.project}/topics/{spec.topic}")
                delivered += ports.bus.pull(spec.name, self._pusher(url, spec.name, token))
            if not delivered:
                self.stop_event.wait(0.2)

    def _pusher(self, url: str, subscription: str, token: bytes):
        headers = {wsgi.PUSH_HEADER: token.decode()}

        def deliver(message: Message) -> None:
            body = push_body(self.config.project, subscription, message)
            try:
                response = self.session.post(url, json=body, headers=headers, timeout=60)
            except requests.RequestException as e:
                raise RetryableError("push delivery failed") from e
            if response.status_code >= 300:
                raise RetryableError(f"subscriber answered {response.status_code}")
        return deliver

    # -- emulator ---------------------------------------------------------------------------
    def start_emulator(self) -> None:
        """Needs ``FIRESTORE_EMULATOR_HOST``/``PUBSUB_EMULATOR_HOST`` set (see :func:`run`)."""
        env = dict(os.environ)
        config = self.config
        ports = bootstrap.build(config)
        ensure_local_state(ports)
        token = push_token(ports)
        fn_ports = self._spawn_functions(env)
        proxies = {f"/{name}": wsgi.guarded(name, wsgi.proxy_app(
            f"http://127.0.0.1:{p}", self.session,
            push_token=None if COMPONENTS[name].trigger == "http" else token), token)
            for name, p in fn_ports.items()}
        self._serve(DispatcherMiddleware(wsgi.root_app("emulator", self._sandbox()), proxies))

        def endpoint(component: str, topic: str) -> str:
            return (f"http://127.0.0.1:{config.port}/{component}/projects/{config.project}"
                    f"/topics/{topic}?{wsgi.PUSH_QUERY}={token.decode()}")

        for spec in subscription_specs(endpoint, min_backoff=LOCAL_MIN_BACKOFF,
                                       max_backoff=LOCAL_MAX_BACKOFF):
            ports.bus.ensure_subscription(spec)
        threading.Thread(target=self._ticker, args=(ports,), name="ticker", daemon=True).start()

    def _spawn_functions(self, env: dict[str, str]) -> dict[str, int]:
        log_dir = self.config.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = env | {"PYTHONPATH": str(ROOT), "KEYWAY_STATE_DIR": str(self.config.state_dir),
                     "KEYWAY_PROJECT": self.config.project}
        fn_ports: dict[str, int] = {}
        for c in COMPONENTS.values():
            fn_ports[c.name] = port = emulators.free_port()
            self.processes.append(fnserve.spawn(c, port, env, log_dir / f"{c.name}.log"))
        for name, port in fn_ports.items():
            self._wait_up(name, port)
        return fn_ports

    def _wait_up(self, name: str, port: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.session.get(f"http://127.0.0.1:{port}/", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"function {name} did not start; see {self.config.state_dir}/logs")

    def _sandbox(self) -> dict[str, str]:
        return {provider: sim.url for provider, sim in self.simulators.items()}

    def _save_sandbox(self) -> None:
        if self.simulators:
            try:
                sandbox_state.save(self.config.state_dir, self.simulators)
            except OSError as e:
                log.warning("runner.sandbox_not_saved", extra={"fields": {"error": str(e)}})

    # -- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()
        self._save_sandbox()
        if self.server is not None:
            self.server.shutdown()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.emulators is not None:
            self.emulators.stop()
        for simulator in self.simulators.values():
            simulator.stop()


SANDBOX_SEED = {"github": "acme", "gitlab": "acme-group", "bitbucket": "acme-workspace",
                "jira": "acme"}
SANDBOX_SIMULATORS: tuple[tuple[str, type[Simulator]], ...] = (
    ("github", GitHubSimulator), ("gitlab", GitLabSimulator), ("bitbucket", BitbucketSimulator),
    ("jira", JiraSimulator))
# GitHub: keyway's KEYWAY_GITHUB_CLIENT_ID is an OAuth App (never-expiring gho_ tokens with
# classic scopes, so public repositories only); the sandbox GitHub App has its own client.
SANDBOX_OPTIONS: dict[str, dict] = {"github": {"expiring_tokens": False}}
SANDBOX_ACTIVITY = {"repos": 3, "prs": 60, "issues": 90, "comments": 400, "review_comments": 60,
                    "reviews": 40}


SANDBOX_APP = {"KEYWAY_GITHUB_APP_ID": "1000001", "KEYWAY_GITHUB_APP_SLUG": "keyway-sandbox",
               "KEYWAY_GITHUB_APP_CLIENT_ID": "keyway-sandbox-github-app"}
SANDBOX_INSTALLATION = 1


def start_sandbox(public_url: str, secrets_source: SecretSource | None = None,
                  state_dir: Path | None = None) -> dict[str, Simulator]:
    """Simulators for providers with no configured OAuth client; sets their env variables.
    With ``secrets_source``, the sandbox GitHub gets its App too (:func:`_sandbox_app`); with
    ``state_dir``, each simulator takes its former port and tokens back
    (:mod:`keyway.sandbox_state`)."""
    started: dict[str, Simulator] = {}
    saved = sandbox_state.load(state_dir) if state_dir is not None else {}
    for provider, simulator_class in SANDBOX_SIMULATORS:
        up = provider.upper()
        if os.environ.get(f"KEYWAY_{up}_CLIENT_ID"):
            continue
        simulator = simulator_class(port=sandbox_state.port_for(saved, provider),
                                    **SANDBOX_OPTIONS.get(provider, {})).start()
        sandbox_state.restore_tokens(simulator, saved, provider)
        simulator.sign_in_page()  # a person chooses which seeded account signs in
        secret = secrets.token_urlsafe(24)
        simulator.register_client(f"keyway-sandbox-{provider}", secret,
                                  [f"{public_url}/oauth-{provider}/callback"])
        simulator.seed_activity(SANDBOX_SEED[provider], **SANDBOX_ACTIVITY)
        if isinstance(simulator, GitHubSimulator) and secrets_source is not None:
            _sandbox_app(simulator, secrets_source, f"keyway-sandbox-{provider}")
        os.environ.update({f"KEYWAY_{up}_CLIENT_ID": f"keyway-sandbox-{provider}",
                           f"KEYWAY_{up}_OAUTH_URL": simulator.oauth_url,
                           f"KEYWAY_{up}_API_URL": simulator.api_url,
                           f"KEYWAY_SECRET_{up}_CLIENT_SECRET": secret})
        log.info("runner.sandbox_provider", extra={"fields": {"provider": provider,
                                                               "url": simulator.url}})
        started[provider] = simulator
    return started


def _sandbox_app(sim: GitHubSimulator, source: SecretSource, oauth_client_id: str) -> None:
    """Register the sandbox GitHub App and install it on the seeded organisation. Like a real
    App it has its own OAuth client (``keyway-sandbox-github-app``, a fresh random secret in
    ``KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET``), apart from the sandbox OAuth App
    ``oauth_client_id``, whose callback URL it shares: the install code is the App client's."""
    if os.environ.get("KEYWAY_GITHUB_APP_ID"):
        return  # an app is configured: its own key and id, not the sandbox's
    key = serialization.load_pem_private_key(ensure_github_app_key(source), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    client_secret = secrets.token_urlsafe(24)
    sim.apps.register_app(SANDBOX_APP["KEYWAY_GITHUB_APP_ID"], public,
                          registry.get("github").github_app.permissions,
                          slug=SANDBOX_APP["KEYWAY_GITHUB_APP_SLUG"],
                          client_id=SANDBOX_APP["KEYWAY_GITHUB_APP_CLIENT_ID"],
                          client_secret=client_secret,
                          redirect_uris=sim.oauth.clients[oauth_client_id].redirect_uris)
    sim.apps.add_installation(SANDBOX_INSTALLATION, SANDBOX_SEED["github"],
                              users=[sim.account.id])
    os.environ.update(SANDBOX_APP, KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET=client_secret)


def run(backend: str) -> None:
    """Start the stack for ``backend`` (config from the environment); block until stopped."""
    os.environ["KEYWAY_BACKEND"] = backend
    started: emulators.Emulators | None = None
    if backend == "emulator" and not (os.environ.get("FIRESTORE_EMULATOR_HOST")
                                      and os.environ.get("PUBSUB_EMULATOR_HOST")):
        state_dir = Path(os.environ.get("KEYWAY_STATE_DIR") or ".keyway").resolve()
        started = emulators.start(state_dir / "logs")
        os.environ.update(started.env())
    config = Config.from_env()
    os.environ["KEYWAY_STATE_DIR"] = str(config.state_dir)
    configure(config.log_level)
    runner = Runner(config)
    runner.emulators = started
    runner.simulators = start_sandbox(config.public_url, bootstrap.ports(config).secrets,
                                      config.state_dir)
    signal.signal(signal.SIGTERM, runner.request_stop)
    try:
        if config.backend == "embedded":
            runner.start_embedded()
        elif config.backend == "emulator":
            runner.start_emulator()
        else:
            raise SystemExit("make run serves the embedded or emulator backend; "
                             "deploy gcp with infra/")
        write_stack_file(config)
        while not runner.stop_requested:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the cleanup
        runner.stop()
        remove_stack_file(config)
        log.info("runner.stopped")
