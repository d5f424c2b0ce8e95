"""The design card's layout holds: one function folder per component, thin entry points, and
``google.cloud`` imported only inside the GCP adapters."""

import ast
from pathlib import Path

from shared import policy
from shared.components import COMPONENTS

ROOT = Path(__file__).resolve().parents[2]


def test_every_component_has_a_function_folder_and_nothing_else_does() -> None:
    folders = {p.name for p in (ROOT / "functions").iterdir() if p.is_dir()}
    assert folders == set(COMPONENTS)


def test_entry_points_are_thin_and_export_the_declared_target() -> None:
    for component in COMPONENTS.values():
        source = (ROOT / "functions" / component.name / "main.py").read_text()
        assert len(source.splitlines()) <= 40, component.name
        tree = ast.parse(source)
        targets = {t.id for node in tree.body if isinstance(node, ast.Assign)
                   for t in node.targets if isinstance(t, ast.Name)}
        assert component.entry_point in targets, component.name


def _google_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [n for n in names if n == "google" or n.startswith("google.")]
    return found


def test_google_cloud_is_imported_only_under_the_gcp_adapters() -> None:
    allowed = ROOT / "shared" / "adapters" / "gcp"
    offenders = []
    for folder in ("shared", "functions", "keyway"):
        for path in (ROOT / folder).rglob("*.py"):
            if allowed in path.parents:
                continue
            if _google_imports(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_import_check_would_catch_an_offender(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from google.cloud import firestore\n    return firestore\n")
    assert _google_imports(sneaky) == ["google.cloud"]


def test_every_topic_has_one_subscriber_that_is_a_pubsub_component() -> None:
    for topic, route in policy.ROUTES.items():
        assert COMPONENTS[route.subscriber].trigger == "pubsub", topic
        for publisher in route.publishers:
            assert publisher in COMPONENTS or publisher == policy.CLOUD_SCHEDULER, publisher


def test_every_pubsub_component_consumes_at_least_one_topic() -> None:
    for component in COMPONENTS.values():
        assert bool(component.topics) == (component.trigger == "pubsub"), component.name


def test_only_the_kms_adapter_loads_the_kms_client_library() -> None:
    """A function that never wraps a data key (webhooks, api, fetchers, ingest) must not pay
    for google.cloud.kms on its first request: the adapters it does load — Firestore, Pub/Sub,
    Secret Manager — and the bootstrap (Cloud KMS is a Lazy port) never import it."""
    import subprocess
    import sys

    code = ("import sys, shared.bootstrap, shared.adapters.gcp.firestore_store, "
            "shared.adapters.gcp.pubsub_bus, shared.adapters.gcp.secret_manager; "
            "print(sorted(m for m in sys.modules if m.startswith('google.cloud.kms')))")
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, timeout=120, check=True).stdout.strip()
    assert loaded == "[]"
    code = "import sys, shared.adapters.gcp.cloud_kms; print('google.cloud.kms' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120, check=True).stdout.strip() == "True"


def test_a_pubsub_function_imports_only_its_own_roles_handlers() -> None:
    """Cold start: each Pub/Sub function loads its own handler module, not the other
    components' (the scheduler has no vault, fetcher or actions code; vault-P no webhook
    pipeline). (Flask comes with functions-framework, so every function has it anyway.)"""
    import subprocess
    import sys

    roles = {"scheduler": "shared.scheduler.tick", "ingest": "shared.ingest.handler",
             "vault": "shared.vault.handlers", "fetch": "shared.fetch.handler",
             "act": "shared.actions.handler", "notify": "shared.notify.deliver"}
    root = Path(__file__).resolve().parents[2]
    for component in ("scheduler", "ingest", "vault-gitlab", "fetch-github", "act-jira",
                      "notify"):
        role = component.partition("-")[0]
        code = (f"import sys; from shared.routing import handlers_for; "
                f"assert handlers_for({component!r}); "
                f"print(sorted(m for m in {sorted(roles.values())!r} if m in sys.modules))")
        loaded = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                                text=True, timeout=120, check=True).stdout.strip()
        assert loaded == repr([roles[role]]), (component, loaded)
    code = ("import sys; from shared.routing import handlers_for; handlers_for('vault-github');"
            " print('shared.webhooks.pipeline' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip() == "False"
