import sys
import threading

from shared.bootstrap import Lazy


class Counting:
    built = 0

    def __init__(self) -> None:
        Counting.built += 1

    def access(self, name: str) -> bytes:
        return name.encode()


def test_a_lazy_port_builds_its_adapter_only_on_first_use_and_once():
    Counting.built = 0
    port = Lazy(Counting)
    assert Counting.built == 0
    threads = [threading.Thread(target=port.access, args=("x",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert port.access("y") == b"y" and Counting.built == 1


def test_building_embedded_ports_loads_no_google_cloud_client(tmp_path):
    import subprocess

    code = ("import sys; from shared.bootstrap import build; from shared.config import Config; "
            f"build(Config.from_env({{'KEYWAY_STATE_DIR': {str(tmp_path)!r}}})); "
            "print(sorted(m for m in sys.modules if m.startswith('google.cloud.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
