"""A real browser for the console tests: Debian's Chromium and chromedriver, driven by selenium.

Missing Chromium, chromedriver or selenium skips these tests locally and fails them under
``CI=true`` (as the emulators do, ``tests/conftest.py``); ``make test-deps`` and ``.ci/run``
install them. One browser per module, headless, in a fresh profile, with every background
network feature off (the machine has no outside network), 400 px wide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from keyway.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH = 400
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-popup-blocking", f"--window-size={WIDTH},900")


def _strict() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    missing = _missing()
    if missing:
        if _strict():
            pytest.fail(f"Chromium is required under CI=true: {missing}", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_window_size(WIDTH, 900)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


class Stack:
    """`make run`'s embedded stack as a real process, with its state directory."""

    def __init__(self, port: int, state: Path, process: subprocess.Popen) -> None:
        self.port, self.state, self.process = port, state, process
        self.base = f"http://127.0.0.1:{port}"

    def store(self):
        from shared.adapters.embedded.sqlite_store import SqliteDocumentStore

        return SqliteDocumentStore(self.state / "business.db")


@pytest.fixture(scope="module")
def stack(browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port, folder = free_port(), tmp_path_factory.mktemp("console-stack")
    state, log = folder / "state", folder / "run.log"
    env = {**os.environ, "PORT": str(port), "KEYWAY_BACKEND": "embedded",
           "KEYWAY_STATE_DIR": str(state), "KEYWAY_TICK_SECONDS": "1",
           "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost"}
    for name in ("KEYWAY_PUBLIC_URL", "KEYWAY_FRONTEND_URL", "KEYWAY_CONSOLE_ORIGINS"):
        env.pop(name, None)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "keyway", "run"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the stack did not start:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        yield Stack(port, state, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
