"""The local stack behind ``make run``: every function on one port, fed by the bus.

* ``embedded`` — one process: every function's functions-framework app is mounted under
  ``/<function-name>``; a pump thread pulls each subscription from the SQLite bus (woken by
  every publish in the process, polling every 0.2 s otherwise) and POSTs the
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
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from keyway import emulators, fnserve, sandbox_state, supervisor, wsgi
from keyway.firststart import ensure_local_state, push_token
from keyway.sandbox import start_sandbox
from keyway.simulators import (
    Simulator,
)
from keyway.stackfile import remove_stack_file, write_stack_file
from shared import bootstrap, messages
from shared.clock import isoformat
from shared.components import COMPONENTS
from shared.config import Config
from shared.errors import RetryableError
from shared.log import configure, get_logger
from shared.ports import Message, Ports
from shared.topology import outlet_topics, subscription_specs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MIN_BACKOFF, LOCAL_MAX_BACKOFF = 1.0, 60.0
PUMP_POLL = 0.2  # seconds the embedded pump sleeps when no publish of this process wakes it
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
        self.supervisor: supervisor.Supervisor | None = None
        self.bus_specs: list = []

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
                if e.key == "bus.topic_missing":  # a restarted emulator keeps no topics
                    self._ensure_bus(ports)
            self._save_sandbox()
            self.stop_event.wait(self.config.tick_seconds)

    def _ensure_bus(self, ports: Ports) -> None:
        """Create every topic and subscription again (idempotent): what a restarted Pub/Sub
        emulator lost."""
        try:
            for spec in self.bus_specs:
                ports.bus.ensure_subscription(spec)
            log.info("runner.bus_restored", extra={"fields": {"subscriptions":
                                                              len(self.bus_specs)}})
        except RetryableError as e:
            log.warning("runner.bus_not_restored", extra={"fields": {"detail": e.detail}})

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
        released = ports.bus.expire_leases()  # claimed by a previous run that died: redeliver
        if released:
            log.info("runner.redelivering", extra={"fields": {"messages": released}})
        for topic in outlet_topics():  # keyway-events: published to, consumed outside keyway
            ports.bus.ensure_topic(topic)
        apps = {c.name: functions_framework.create_app(c.entry_point, fnserve.source(c),
                                                       fnserve.signature(c))
                for c in COMPONENTS.values()}
        token = push_token(ports)
        self._serve(wsgi.mounted("embedded", apps, self._sandbox(), push_token=token,
                                 status=lambda: supervisor.health(self.config, None)))
        threading.Thread(target=self._pump, args=(ports, specs, token), name="pump",
                         daemon=True).start()
        threading.Thread(target=self._ticker, args=(ports,), name="ticker", daemon=True).start()

    def _pump(self, ports: Ports, specs, token: bytes) -> None:
        """Push every due message; with nothing due, sleep until a publish in this process
        rings the bus (:meth:`SqliteMessageBus.wait_for_publish`) or :data:`PUMP_POLL`
        passes (publishes from other processes, retries whose backoff ended)."""
        bus = ports.bus
        while not self.stop_event.is_set():
            seen = bus.published()  # before pulling: a publish during the pass wakes the wait
            delivered = 0
            for spec in specs:
                subscriber = next(c for c in COMPONENTS.values() if spec.topic in c.topics)
                url = (f"http://127.0.0.1:{self.config.port}/{subscriber.name}"
                       f"/projects/{self.config.project}/topics/{spec.topic}")
                delivered += ports.bus.pull(spec.name, self._pusher(url, spec.name, token))
            if not delivered:
                bus.wait_for_publish(seen, PUMP_POLL)

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
            self._function_url(name), self.session,
            push_token=None if COMPONENTS[name].trigger == "http" else token), token)
            for name in fn_ports}
        functions = self.supervisor.status
        root = wsgi.root_app("emulator", self._sandbox(),
                             lambda: supervisor.health(self.config, functions()), functions)
        self._serve(DispatcherMiddleware(root, proxies))

        def endpoint(component: str, topic: str) -> str:
            return (f"http://127.0.0.1:{config.port}/{component}/projects/{config.project}"
                    f"/topics/{topic}?{wsgi.PUSH_QUERY}={token.decode()}")

        self.bus_specs = list(subscription_specs(endpoint, min_backoff=LOCAL_MIN_BACKOFF,
                                                 max_backoff=LOCAL_MAX_BACKOFF))
        for spec in self.bus_specs:
            ports.bus.ensure_subscription(spec)
        for topic in outlet_topics():
            ports.bus.ensure_topic(topic)
        threading.Thread(target=self._ticker, args=(ports,), name="ticker", daemon=True).start()

    def _spawn_functions(self, env: dict[str, str]) -> dict[str, int]:
        log_dir = self.config.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = env | {"PYTHONPATH": str(ROOT), "KEYWAY_STATE_DIR": str(self.config.state_dir),
                     "KEYWAY_PROJECT": self.config.project}
        self.supervisor = supervisor.Supervisor(env, log_dir)
        fn_ports = dict(zip(COMPONENTS, emulators.free_ports(len(COMPONENTS)), strict=True))
        for name, port in fn_ports.items():
            self.supervisor.spawn(name, port)
        threading.Thread(target=self.supervisor.watch, args=(self.stop_event.is_set,),
                         name="supervisor", daemon=True).start()  # a process that died comes back
        for name in fn_ports:
            self._wait_up(name)
        return fn_ports

    def _function_url(self, name: str) -> Callable[[], str]:
        return lambda: f"http://127.0.0.1:{self.supervisor.port_of(name)}"

    def _wait_up(self, name: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.session.get(f"{self._function_url(name)()}/", timeout=2)
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
        processes = self.processes + (self.supervisor.processes() if self.supervisor else [])
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.emulators is not None:
            self.emulators.stop()
        for simulator in self.simulators.values():
            simulator.stop()


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
        print(f"keyway console: {config.public_url}/api/console/ (sign in as a sandbox user); "  # noqa: T201 — the line a person looks for
              f"API reference: {config.public_url}/api/docs", flush=True)
        while not runner.stop_requested:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the cleanup
        runner.stop()
        remove_stack_file(config)
        log.info("runner.stopped")
