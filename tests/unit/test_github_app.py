"""GitHub App installation tokens against the GitHub simulator over real HTTP: the app JWT,
minting narrowed to the provider table's read permissions, the in-memory cache (and its
single flight), refusal of over-granted tokens, uninstalled installations, and the
installation-membership check of the connect flow.

Every secret is tracked by the leak guard: the app's private key (here), the JWTs (RS256
PKCS#1 v1.5 signatures are deterministic, so with a frozen clock the test computes the very
JWT the minter sends) and every token the simulator issues (``on_issue``).
"""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keyway.simulators import Account, GitHubSimulator
from shared.adapters.embedded.local_secrets import LocalSecretSource
from shared.errors import ConfigError, InvalidInput, PermanentError, UnavailableError
from shared.providers import registry
from shared.vault.github_app import (
    AppCredentials,
    AppCredentialsRejected,
    ExcessPermissions,
    InstallationGone,
    InstallationTokenMinter,
    app_jwt,
    load_app_credentials,
    verify_installation_belongs_to_user,
)

APP_ID = "424242"
INSTALLATION = 9_000_001
SPEC = registry.get("github").github_app
TABLE_SCOPES = ("issues:read", "metadata:read", "pull_requests:read")
# What the admin granted the app: more than keyway asks for, so narrowing is visible.
GRANTED = {"metadata": "read", "issues": "write", "pull_requests": "write", "contents": "read"}
MEMBER = Account("octocat", 583231, "The Octocat")  # the simulator's default user
STRANGER = Account("mallory", 31337, "Mallory")
TOKENS_PATH = f"/api/v3/app/installations/{INSTALLATION}/access_tokens"


class Clock:
    """One frozen time for both sides: ``now()`` for keyway, ``()`` (epoch s) for the sim."""

    def __init__(self) -> None:
        self.moment = datetime(2031, 5, 4, 12, 0, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def __call__(self) -> float:
        return self.moment.timestamp()

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def track_key(leak_guard, pem: bytes) -> bytes:
    """The PEM, and its base64 body (whole and by line), are secrets."""
    leak_guard.track(pem)
    lines = pem.decode().strip().splitlines()[1:-1]
    leak_guard.track("".join(lines))
    for line in lines[:-1]:
        leak_guard.track(line)
    return pem


def assert_clean(leak_guard, error: BaseException) -> None:
    """``pytest.raises`` hides exceptions from the guard: check them (and causes) here."""
    assert leak_guard.exception_leaks(error) == []


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def credentials(app_key, leak_guard) -> AppCredentials:
    return AppCredentials(APP_ID, track_key(leak_guard, private_pem(app_key)))


@pytest.fixture
def github(clock, leak_guard, app_key):
    with GitHubSimulator(clock=clock, on_issue=leak_guard.track) as sim:
        sim.seed("acme", repos=3)
        sim.apps.register_app(APP_ID, public_pem(app_key), GRANTED)
        sim.apps.add_installation(INSTALLATION, "acme", GRANTED, users=[MEMBER.id])
        yield sim


def make_minter(sim, credentials, clock, **kw) -> InstallationTokenMinter:
    return InstallationTokenMinter(credentials, sim.api_url, requests.Session(), clock, SPEC,
                                   **kw)


@pytest.fixture
def minter(github, credentials, clock) -> InstallationTokenMinter:
    return make_minter(github, credentials, clock)


def posts(sim) -> list:
    return [r for r in sim.requests_log if r.method == "POST" and r.path == TOKENS_PATH]


def api_get(sim, path: str, token: str, leak_guard) -> requests.Response:
    answer = requests.get(f"{sim.api_url}{path}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    leak_guard.check_response(answer)
    return answer


# ---- minting -------------------------------------------------------------------------------
def test_minted_token_has_exactly_the_table_reads_and_works_against_the_api(
        github, minter, clock, credentials, leak_guard):
    leak_guard.track(app_jwt(credentials, clock.now(), SPEC.jwt_ttl_seconds))
    tokens = minter.mint(str(INSTALLATION))
    assert tokens.access_token.startswith("ghs_") and len(tokens.access_token) == 40
    assert tokens.scopes == TABLE_SCOPES and tokens.refresh_token is None
    assert tokens.expires_at == clock.now() + timedelta(hours=1)
    # the installation granted write and contents; the token carries only the table's reads
    assert github.access_tokens[tokens.access_token].scopes == TABLE_SCOPES
    [sent] = posts(github)
    assert sent.status == 201 and sent.headers["authorization"] == "Bearer"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    listed = api_get(github, "/installation/repositories", tokens.access_token, leak_guard)
    assert listed.status_code == 200 and listed.json()["total_count"] == 3
    assert listed.json()["repository_selection"] == "all"
    assert [r["full_name"] for r in listed.json()["repositories"]] == [
        "acme/repo-0001", "acme/repo-0002", "acme/repo-0003"]  # repo-0003 is private
    assert tokens.access_token not in repr(tokens)


@pytest.mark.parametrize("path", ["/user/repos", "/user", "/user/installations"])
def test_an_installation_token_is_refused_where_github_apps_are_not_enabled(
        github, minter, leak_guard, path):
    token = minter.mint(str(INSTALLATION)).access_token
    refused = api_get(github, path, token, leak_guard)
    assert refused.status_code == 403
    assert refused.json() == {"message": "Resource not accessible by integration",
                              "documentation_url": "https://docs.github.com/rest",
                              "status": "403"}


def test_tokens_are_cached_and_reminted_five_minutes_before_expiry(github, minter, clock):
    first = minter.mint(str(INSTALLATION))
    assert minter.mint(str(INSTALLATION)) is first and len(posts(github)) == 1
    clock.advance(3600 - 301)  # 5 min 1 s left: still served from memory
    assert minter.mint(str(INSTALLATION)) is first and len(posts(github)) == 1
    clock.advance(2)  # 4 min 59 s left: minted again
    second = minter.mint(INSTALLATION)
    assert second.access_token != first.access_token and len(posts(github)) == 2
    assert second.expires_at == clock.now() + timedelta(hours=1)


def test_twenty_concurrent_mints_make_one_request(github, minter):
    github.stall_next(0.3, path_prefix=TOKENS_PATH)  # keep the first request in flight
    start = threading.Barrier(20)

    def mint(_: int) -> str:
        start.wait()
        return minter.mint(str(INSTALLATION)).access_token

    with ThreadPoolExecutor(max_workers=20) as pool:
        tokens = set(pool.map(mint, range(20)))
    assert len(tokens) == 1 and len(posts(github)) == 1


def test_a_permission_the_installation_lacks_is_refused(github, credentials, clock, leak_guard):
    github.apps.add_installation(INSTALLATION + 1, "acme", {"metadata": "read"})
    with pytest.raises(PermanentError) as refused:
        make_minter(github, credentials, clock).mint(str(INSTALLATION + 1))
    assert refused.value.key == "github_app.permissions_not_granted"
    assert github.requests_log[-1].status == 422
    assert_clean(leak_guard, refused.value)


@pytest.mark.parametrize("overgrant", [True, {"administration": "read"}])
def test_an_overgranted_token_is_refused_revoked_and_not_cached(
        github, minter, leak_guard, overgrant):
    github.apps.overgrant = overgrant
    with pytest.raises(ExcessPermissions) as refused:
        minter.mint(str(INSTALLATION))
    assert refused.value.key == "github_app.excess_permissions"
    assert "contents" in str(refused.value)  # names permissions, never the token
    assert_clean(leak_guard, refused.value)
    [wasted] = github.apps.installations[INSTALLATION].tokens
    assert wasted in github.revoked
    assert [(r.method, r.status) for r in github.requests_log[-1:]] == [("DELETE", 204)]
    github.apps.overgrant = False
    assert minter.mint(str(INSTALLATION)).scopes == TABLE_SCOPES and len(posts(github)) == 2


# ---- failures -----------------------------------------------------------------------------
def test_a_jwt_signed_by_another_key_is_bad_credentials(github, clock, other_key, leak_guard):
    impostor = AppCredentials(APP_ID, track_key(leak_guard, private_pem(other_key)))
    leak_guard.track(app_jwt(impostor, clock.now(), SPEC.jwt_ttl_seconds))
    with pytest.raises(AppCredentialsRejected) as refused:
        make_minter(github, impostor, clock).mint(str(INSTALLATION))
    assert refused.value.key == "github_app.bad_credentials"
    assert github.requests_log[-1].status == 401
    assert_clean(leak_guard, refused.value)


def test_an_uninstalled_installation_is_gone(github, minter, clock, leak_guard):
    token = minter.mint(str(INSTALLATION)).access_token
    assert github.apps.remove_installation(INSTALLATION)
    assert api_get(github, "/user/repos", token, leak_guard).status_code == 401
    minter.invalidate(str(INSTALLATION))  # what the vault does when GitHub answers 401
    with pytest.raises(InstallationGone) as gone:
        minter.mint(str(INSTALLATION))
    assert gone.value.key == "github_app.installation_gone"
    assert github.requests_log[-1].status == 404
    assert_clean(leak_guard, gone.value)


def test_a_suspended_installation_is_gone(github, minter, leak_guard):
    github.apps.suspend_installation(INSTALLATION)
    with pytest.raises(InstallationGone) as gone:
        minter.mint(str(INSTALLATION))
    assert github.requests_log[-1].status == 403
    assert_clean(leak_guard, gone.value)


def test_outages_and_timeouts_are_retryable(github, credentials, clock, leak_guard):
    minter = make_minter(github, credentials, clock, timeout=0.3)
    github.fail_next(502, path_prefix=TOKENS_PATH)
    with pytest.raises(UnavailableError) as down:
        minter.mint(str(INSTALLATION))
    assert_clean(leak_guard, down.value)
    github.stall_next(1.0, path_prefix=TOKENS_PATH)
    with pytest.raises(UnavailableError) as slow:
        minter.mint(str(INSTALLATION))
    assert_clean(leak_guard, slow.value)
    assert minter.mint(str(INSTALLATION)).scopes == TABLE_SCOPES


@pytest.mark.parametrize("installation_id", ["", "0", "12/../x", "1 ", "12\n", "-4", True])
def test_installation_ids_are_positive_integers(minter, installation_id):
    with pytest.raises(InvalidInput):
        minter.mint(installation_id)


# ---- the app JWT --------------------------------------------------------------------------
def test_app_jwt_claims(credentials, app_key, clock, leak_guard):
    now = clock.now()
    assertion = leak_guard.track(app_jwt(credentials, now, SPEC.jwt_ttl_seconds))
    assert app_jwt(credentials, now, SPEC.jwt_ttl_seconds) == assertion  # deterministic
    assert jwt.get_unverified_header(assertion)["alg"] == "RS256"
    claims = jwt.decode(assertion, app_key.public_key(), algorithms=["RS256"],
                        options={"verify_exp": False, "verify_iat": False})
    epoch = int(now.timestamp())
    assert claims == {"iat": epoch - 60, "exp": epoch + SPEC.jwt_ttl_seconds, "iss": APP_ID}
    assert claims["exp"] - epoch <= 600
    leak_guard.track(app_jwt(credentials, now, 600))
    for ttl in (601, 3600, 0, -1):
        with pytest.raises(InvalidInput) as refused:
            app_jwt(credentials, now, ttl)
        assert refused.value.key == "github_app.jwt_ttl"
    with pytest.raises(InvalidInput):
        app_jwt(credentials, now.replace(tzinfo=None), 60)


@pytest.mark.parametrize(("iat", "exp", "message"), [
    (-700, -100, "'Expiration time' claim ('exp') must be a numeric value"),
    (0, 700, "'Expiration time' claim ('exp') is too far in the future"),
    (-300, 500, "'Expiration time' claim ('exp') is too far in the future"),
    (120, 400, "'Issued at' claim ('iat')"),
])
def test_the_simulator_enforces_githubs_jwt_times(github, credentials, clock, leak_guard,
                                                  iat, exp, message):
    epoch = int(clock.now().timestamp())
    assertion = leak_guard.track(jwt.encode(
        {"iat": epoch + iat, "exp": epoch + exp, "iss": APP_ID},
        credentials.private_key_pem, algorithm="RS256"))
    answer = requests.post(f"{github.url}{TOKENS_PATH}", timeout=5,
                           headers={"Authorization": f"Bearer {assertion}"})
    assert answer.status_code == 401 and answer.json()["message"].startswith(message)
    leak_guard.check_response(answer)


def test_the_simulator_shows_an_installation_only_to_its_app(github, credentials, clock,
                                                             other_key, leak_guard):
    github.apps.register_app("777", public_pem(other_key))
    github.apps.add_installation(INSTALLATION + 2, "elsewhere", app_id="777")
    assertion = leak_guard.track(app_jwt(credentials, clock.now(), 60))

    def get(installation: int) -> requests.Response:
        answer = requests.get(f"{github.api_url}/app/installations/{installation}", timeout=5,
                              headers={"Authorization": f"Bearer {assertion}"})
        leak_guard.check_response(answer)
        return answer

    mine = get(INSTALLATION).json()
    assert mine["account"]["login"] == "acme" and mine["permissions"] == GRANTED
    assert mine["app_id"] == int(APP_ID)
    assert get(INSTALLATION + 2).status_code == 404


# ---- credentials --------------------------------------------------------------------------
def test_load_app_credentials(tmp_path, app_key, leak_guard):
    pem = track_key(leak_guard, private_pem(app_key))
    secrets = LocalSecretSource(tmp_path / "secrets.json", env={})
    assert load_app_credentials(secrets, {}) is None
    with pytest.raises(ConfigError) as missing:
        load_app_credentials(secrets, {"KEYWAY_GITHUB_APP_ID": APP_ID})
    assert missing.value.key == "github_app.no_private_key"
    secrets.add_version("github-app-private-key", pem)
    loaded = load_app_credentials(secrets, {"KEYWAY_GITHUB_APP_ID": f" {APP_ID} "})
    assert loaded == AppCredentials(APP_ID, pem)
    assert repr(loaded) == str(loaded) == f"AppCredentials(app_id='{APP_ID}')"
    with pytest.raises(TypeError):
        pickle.dumps(loaded)
    one_line = LocalSecretSource(tmp_path / "other.json", env={
        "KEYWAY_SECRET_GITHUB_APP_PRIVATE_KEY": pem.decode().replace("\n", "\\n")})
    assert load_app_credentials(one_line, {"KEYWAY_GITHUB_APP_ID": APP_ID}) == loaded


# A PEM block whose body is not a key ("not a key"), assembled so no key block is committed.
NOT_A_KEY_PEM = b"\n".join([b"-----BEGIN " + b"PRIVATE KEY-----", b"bm90IGEga2V5",
                             b"-----END " + b"PRIVATE KEY-----", b""])


@pytest.mark.parametrize(("app_id", "key", "problem"), [
    ("424242", NOT_A_KEY_PEM,
     "github_app.bad_private_key"),
    ("42/../x", None, "github_app.bad_app_id"),
])
def test_bad_app_configuration_is_a_config_error(tmp_path, app_key, leak_guard, app_id, key,
                                                 problem):
    pem = key or track_key(leak_guard, private_pem(app_key))
    secrets = LocalSecretSource(tmp_path / "secrets.json", env={})
    secrets.add_version("github-app-private-key", pem)
    with pytest.raises(ConfigError) as refused:
        load_app_credentials(secrets, {"KEYWAY_GITHUB_APP_ID": app_id})
    assert refused.value.key == problem
    assert_clean(leak_guard, refused.value)


# ---- the connect flow's membership check --------------------------------------------------
def test_installation_membership_is_checked_across_pages(github, leak_guard):
    for n in range(120):  # lower ids sort first: the real one is on page 2
        github.apps.add_installation(100 + n, f"org-{n}", users=[MEMBER.id])
    member = github.oauth.mint(account=MEMBER).access_token
    stranger = github.oauth.mint(account=STRANGER).access_token
    github.clear_log()
    session = requests.Session()
    assert verify_installation_belongs_to_user(github.api_url, member, str(INSTALLATION),
                                               session)
    assert [r.status for r in github.requests_log] == [200, 200]
    assert not verify_installation_belongs_to_user(github.api_url, stranger, str(INSTALLATION),
                                                   session)
    assert not verify_installation_belongs_to_user(github.api_url, member, "77", session)


def test_membership_check_refuses_bad_tokens_and_foreign_pages(github, minter, leak_guard):
    session, path = requests.Session(), "/api/v3/user/installations"
    installation_token = minter.mint(str(INSTALLATION)).access_token
    with pytest.raises(PermanentError) as refused:
        verify_installation_belongs_to_user(github.api_url, installation_token,
                                            str(INSTALLATION), session)
    assert refused.value.key == "github_app.installations_refused"
    assert_clean(leak_guard, refused.value)
    bogus = leak_guard.track("ghu_" + "x" * 36)
    with pytest.raises(PermanentError) as rejected:
        verify_installation_belongs_to_user(github.api_url, bogus, str(INSTALLATION), session)
    assert rejected.value.key == "github_app.user_token_rejected"
    assert_clean(leak_guard, rejected.value)
    member = github.oauth.mint(account=MEMBER).access_token
    github.fail_next(200, path_prefix=path, body=b'{"total_count": 0, "installations": []}',
                     headers={"Link": '<https://evil.example/api/v3/user/installations?page=2>;'
                                      ' rel="next"'})
    with pytest.raises(PermanentError) as foreign:
        verify_installation_belongs_to_user(github.api_url, member, str(INSTALLATION), session)
    assert foreign.value.key == "github_app.bad_pagination"
    assert_clean(leak_guard, foreign.value)


def test_an_apps_own_client_gets_user_to_server_tokens_and_an_oauth_app_classic_ones(
        app_key, leak_guard):
    """GitHub issues an OAuth App's client never-expiring ``gho_`` tokens and a GitHub App's
    own client expiring ``ghu_`` tokens with a ``ghr_`` refresh token, on one server."""
    with GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track) as sim:
        sim.register_client("oauth-app", "oauth-secret", ["http://127.0.0.1/cb"])
        sim.apps.register_app("77", public_pem(app_key), client_id="Iv23.app",
                              client_secret="app-secret", redirect_uris=["http://127.0.0.1/cb"])
        classic = sim.oauth.mint("oauth-app", scopes=("read:user",))
        user = sim.oauth.mint("Iv23.app")
    assert classic.access_token.startswith("gho_") and classic.refresh_token is None
    assert classic.info.expires_at is None
    assert user.access_token.startswith("ghu_") and user.refresh_token.startswith("ghr_")
    assert user.info.expires_at is not None
