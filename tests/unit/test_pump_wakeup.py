"""The embedded pump wakes on a publish instead of waiting out its poll interval: with the
poll set to an hour, a message published while the pump sleeps is still pushed — so what
wakes it can only be the publish."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from keyway import runner as runner_module
from keyway.runner import Runner
from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
from shared.bootstrap import build
from shared.config import Config
from shared.topology import subscription_specs

WAIT = 60.0  # a bound for a broken wake-up to fail in, not a speed threshold


def test_a_publish_wakes_a_bus_waiting_in_another_instance_of_the_same_file(
        tmp_path: Path) -> None:
    waiting, publishing = (SqliteMessageBus(tmp_path / "bus.db") for _ in range(2))
    publishing.ensure_topic("events-github")
    seen = waiting.published()
    woke: list[bool] = []
    sleeper = threading.Thread(target=lambda: woke.append(waiting.wait_for_publish(seen, WAIT)))
    sleeper.start()
    publishing.publish("events-github", b"{}")
    sleeper.join(WAIT + 5)
    assert woke == [True] and waiting.published() == seen + 1
    assert waiting.wait_for_publish(seen + 1, 0.01) is False  # nothing new: it times out


def test_the_embedded_pump_pushes_a_message_published_while_it_sleeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "PUMP_POLL", 3600.0)
    config = Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")})
    ports = build(config)
    spec = next(s for s in subscription_specs() if s.topic == "events-github")
    ports.bus.ensure_subscription(spec)
    runner = Runner(config)
    pushed, asleep = threading.Event(), threading.Event()
    runner._pusher = lambda url, subscription, token: (lambda message: pushed.set())
    real_wait = ports.bus.wait_for_publish

    def wait_for_publish(seen: int, timeout: float) -> bool:
        asleep.set()  # the pump found nothing and is about to sleep
        return real_wait(seen, timeout)

    monkeypatch.setattr(ports.bus, "wait_for_publish", wait_for_publish)
    pump = threading.Thread(target=runner._pump, args=(ports, [spec], b"token"), daemon=True)
    pump.start()
    try:
        assert asleep.wait(WAIT)
        assert not pushed.is_set()
        ports.bus.publish("events-github", b'{"n": 1}')
        assert pushed.wait(WAIT)
    finally:
        runner.stop_event.set()
        ports.bus.publish("events-github", b'{"n": 2}')  # wakes the pump so it sees the stop
        pump.join(WAIT)
        for store in (ports.business, ports.vault):
            store.close()
    assert not pump.is_alive()
