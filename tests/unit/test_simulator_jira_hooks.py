"""The Jira simulator's dynamic webhooks behave as Jira documents them for OAuth 2.0 apps: the
``manage:jira-webhook`` scope, one URL per app, apps isolated from each other, paged lists,
a 30-day life that a refresh extends, deletion by ids — and deliveries over real HTTP signed
with a JWT under the app's client secret, only for live webhooks that match."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from datetime import timedelta

import jwt
import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from keyway.simulators import JiraSimulator
from tests.support import FakeClock

SCOPES = ("read:jira-work", "manage:jira-webhook")
DAY = timedelta(days=1).total_seconds()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    """A loopback endpoint that records what it receives."""
    got: list[Request] = []

    def app(environ, start_response):
        request = Request(environ)
        request.get_data()
        got.append(request)
        return Response(status=202)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.port}/webhook-jira/", got
    server.shutdown()
    server.server_close()


@dataclasses.dataclass
class Jira:
    sim: JiraSimulator
    clock: FakeClock
    secrets: dict[str, str]  # client secret by app (client id)
    projects: list


@pytest.fixture
def jira(leak_guard):
    clock = FakeClock()
    sim = JiraSimulator(on_issue=leak_guard.track, clock=lambda: clock.now().timestamp())
    sim.start()
    known = {app: leak_guard.track(secrets.token_urlsafe(48)) for app in ("app-a", "app-b")}
    for app, secret in known.items():
        sim.register_client(app, secret, ["https://example.test/cb"])
    yield Jira(sim, clock, known, sim.seed_activity("acme", repos=3, issues=6, comments=3))
    sim.stop()


def call(jira: Jira, method: str, path: str, app: str = "app-a", scopes=SCOPES, **kwargs):
    token = jira.sim.mint_token(scopes=scopes, client_id=app).access_token
    return requests.request(method, f"{jira.sim.site_api_url}/rest/api/3/webhook{path}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs)


def register(jira: Jira, url: str, jql: str, app: str = "app-a",
             events=("jira:issue_updated",)) -> requests.Response:
    return call(jira, "POST", "", app, json={"url": url, "webhooks": [
        {"events": list(events), "jqlFilter": jql}]})


def created(answer: requests.Response) -> int:
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["webhookRegistrationResult"]
    return result["createdWebhookId"]


def test_every_webhook_call_needs_the_manage_scope(jira, receiver):
    url, _ = receiver
    for method, path, body in (("GET", "", None), ("POST", "", {"url": url, "webhooks": []}),
                               ("DELETE", "", {"webhookIds": [1]}),
                               ("PUT", "/refresh", {"webhookIds": [1]})):
        for scopes in (("read:jira-work",), ("manage:jira-webhook",)):
            answer = call(jira, method, path, scopes=scopes, json=body)
            assert (answer.status_code, answer.json()) == (401, {
                "code": 401, "message": "Unauthorized; scope does not match"}), method
    assert jira.sim.webhooks.live() == []


def test_registration_answers_per_webhook_and_refuses_what_jira_cannot_filter(jira, receiver):
    url, _ = receiver
    project = jira.projects[0]
    answer = call(jira, "POST", "", json={"url": url, "webhooks": [
        {"events": ["jira:issue_created"], "jqlFilter": f"project = {project.key}"},
        {"events": ["jira:issue_created"], "jqlFilter": "assignee = currentUser()"},
        {"events": ["push"], "jqlFilter": f"project = {project.id}"},
        {"events": ["comment_created"], "jqlFilter": "project in (10000, 99999)"}]})
    results = answer.json()["webhookRegistrationResult"]
    assert "createdWebhookId" in results[0]
    assert [list(r) for r in results[1:]] == [["errors"]] * 3
    (hook,) = jira.sim.webhooks.live()
    assert hook.projects == {project.id}


def test_an_app_has_one_url(jira, receiver):
    url, _ = receiver
    created(register(jira, url, "project = 10000"))
    other = register(jira, "https://elsewhere.example/hooks", "project = 10001")
    assert other.status_code == 400 and len(jira.sim.webhooks.live()) == 1
    assert created(register(jira, url, "project = 10001"))  # the same URL is fine
    assert created(register(jira, "https://elsewhere.example/hooks", "project = 10001",
                            app="app-b"))  # another app has its own


def test_apps_see_delete_and_refresh_only_their_own_webhooks(jira, receiver):
    url, _ = receiver
    mine = created(register(jira, url, "project = 10000"))
    theirs = created(register(jira, url, "project = 10000", app="app-b"))
    listed = call(jira, "GET", "").json()
    assert [w["id"] for w in listed["values"]] == [mine]
    assert call(jira, "DELETE", "", json={"webhookIds": [theirs]}).status_code == 202
    jira.clock.advance(20 * DAY)
    call(jira, "PUT", "/refresh", json={"webhookIds": [theirs]})
    assert jira.sim.webhooks.refreshed == [] and {h.id for h in jira.sim.webhooks.live()} == {
        mine, theirs}


def test_the_list_is_paged(jira, receiver):
    url, _ = receiver
    ids = [created(register(jira, url, f"project = {p.id}")) for p in jira.projects]
    first = call(jira, "GET", "", params={"maxResults": 2}).json()
    assert (first["total"], first["isLast"], [w["id"] for w in first["values"]]) == (
        3, False, ids[:2])
    rest = call(jira, "GET", "", params={"maxResults": 2, "startAt": 2}).json()
    assert (rest["isLast"], [w["id"] for w in rest["values"]]) == (True, ids[2:])
    assert set(rest["values"][0]) == {"id", "jqlFilter", "events", "expirationDate", "url"}


def test_webhooks_expire_after_thirty_days_unless_refreshed(jira, receiver):
    url, _ = receiver
    kept = created(register(jira, url, "project = 10000"))
    lapsed = created(register(jira, url, "project = 10001"))
    jira.clock.advance(25 * DAY)
    answer = call(jira, "PUT", "/refresh", json={"webhookIds": [kept]})
    expected = (jira.clock.now().timestamp() + 30 * DAY) * 1000
    assert answer.json() == {"expirationDate": int(expected)}
    jira.clock.advance(6 * DAY)  # day 31
    assert [w["id"] for w in call(jira, "GET", "").json()["values"]] == [kept]
    call(jira, "PUT", "/refresh", json={"webhookIds": [lapsed]})  # too late: ignored
    assert [h.id for h in jira.sim.webhooks.live()] == [kept]


def test_deleting_takes_ids_in_the_body(jira, receiver):
    url, _ = receiver
    hook = created(register(jira, url, "project = 10000"))
    assert call(jira, "DELETE", "").status_code == 400
    assert call(jira, "DELETE", "", json={"webhookIds": [hook]}).status_code == 202
    assert jira.sim.webhooks.live() == [] and [h.id for h in jira.sim.webhooks.deleted] == [hook]


def test_a_delivery_is_signed_with_the_apps_client_secret_and_names_its_webhooks(
        jira, receiver):
    url, got = receiver
    issued: list[str] = []
    guarded = jira.sim.webhooks.on_token  # the leak guard's
    jira.sim.webhooks.on_token = lambda token: (issued.append(token), guarded(token))
    project = jira.projects[0]
    hook = created(register(jira, url, f"project in ({project.id})",
                            events=("jira:issue_updated", "comment_created")))
    created(register(jira, url, f"project = {jira.projects[1].id}"))  # another project
    issue = next(iter(project.issues.values()))
    (answer,) = jira.sim.deliver("jira:issue_updated", issue["key"])
    assert answer.status_code == 202
    (request,) = got
    scheme, _, token = request.headers["Authorization"].partition(" ")
    assert scheme == "Bearer" and jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, jira.secrets["app-a"], algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    now = int(jira.clock.now().timestamp())
    assert claims["iat"] == now and claims["exp"] > now
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jira.secrets["app-b"], algorithms=["HS256"],
                   options={"verify_exp": False, "verify_iat": False})
    assert token in issued  # the simulator reports every token it signs
    body = request.get_json()
    assert (body["webhookEvent"], body["matchedWebhookIds"]) == ("jira:issue_updated", [hook])
    assert body["issue"]["key"] == issue["key"]
    assert body["issue"]["self"].startswith(jira.sim.site_url)
    assert request.headers["X-Atlassian-Webhook-Identifier"]
    assert jira.sim.deliver("jira:issue_deleted", issue["key"]) == []  # not subscribed


def test_comment_deliveries_carry_the_comment_as_rest_v2_text(jira, receiver):
    url, got = receiver
    created(register(jira, url, "project in (10000, 10001, 10002)",
                     events=("comment_created",)))
    comment_id, comment = next(iter(jira.sim.data.comments.items()))
    (answer,) = jira.sim.deliver("comment_created", comment["issue_key"], comment_id)
    body = got[0].get_json()
    assert body["comment"]["id"] == str(comment_id)
    assert isinstance(body["comment"]["body"], str)
    assert body["issue"]["fields"]["project"]["id"]


def test_an_expired_webhook_delivers_nothing(jira, receiver):
    url, got = receiver
    created(register(jira, url, "project = 10000"))
    issue = next(iter(jira.projects[0].issues.values()))
    jira.clock.advance(31 * DAY)
    assert jira.sim.deliver("jira:issue_updated", issue["key"]) == [] and got == []
