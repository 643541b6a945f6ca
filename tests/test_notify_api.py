"""/api/v1/notifications/: a person's endpoints, tests, deliveries and redelivery, as docs/api.md says."""

import pytest
from standardwebhooks.webhooks import Webhook

from offload.alerts.models import Delivery, Endpoint
from tests.support.jobrunner import run_next
from tests.support.receivers import http_receiver

pytestmark = pytest.mark.django_db
ENDPOINTS = "/api/v1/notifications/endpoints/"


@pytest.fixture(autouse=True)
def _receivers_on_loopback(settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


def make_webhook(api, url="http://127.0.0.1:9/hook", **fields):
    body = {"agent": "webhook", "name": "script", "url": url, "events": ["job.succeeded"], **fields}
    return api.post(ENDPOINTS, body, format="json")


def test_alice_makes_a_webhook_and_sees_its_secret_once(alice_api):
    made = make_webhook(alice_api, kinds=["media.probe"])
    assert made.status_code == 201
    body = made.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["paused"] is False
    assert {k: body[k] for k in ("agent", "name", "url", "events", "kinds", "libraries")} == {
        "agent": "webhook", "name": "script", "url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"],
        "kinds": ["media.probe"], "libraries": [],
    }  # fmt: skip
    again = alice_api.get(f"{ENDPOINTS}{body['id']}/").json()
    assert again["secret"] == "••••••••"
    assert body["secret"] not in str(alice_api.get(ENDPOINTS).json())


def test_bob_cannot_see_change_test_or_delete_alices_endpoint(alice_api, bob_api):
    endpoint = make_webhook(alice_api).json()["id"]
    url = f"{ENDPOINTS}{endpoint}/"
    assert bob_api.get(url).status_code == 404
    assert bob_api.patch(url, {"paused": True}, format="json").status_code == 404
    assert bob_api.post(f"{url}test/").status_code == 404
    assert bob_api.get(f"{url}deliveries/").status_code == 404
    assert bob_api.delete(url).status_code == 404
    assert bob_api.get(ENDPOINTS).json() == []
    assert Endpoint.objects.filter(pk=endpoint, paused=False).exists()


def test_alice_pauses_resumes_and_deletes_her_endpoint(alice_api):
    url = f"{ENDPOINTS}{make_webhook(alice_api).json()['id']}/"
    assert alice_api.patch(url, {"paused": True}, format="json").json()["paused"] is True
    assert alice_api.patch(url, {"paused": False, "name": "renamed"}, format="json").json()["name"] == "renamed"
    assert alice_api.delete(url).status_code == 204
    assert alice_api.get(url).status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://169.254.169.254/latest/meta-data/"},
        {"events": []},
        {"events": ["job.exploded"]},
        {"kinds": ["no.such.kind"]},
        {"libraries": [999999]},
        {"agent": "pager"},
    ],
)
def test_an_endpoint_that_is_unsafe_or_wrong_answers_400(alice_api, fields):
    assert make_webhook(alice_api, **fields).status_code == 400


def test_a_private_address_answers_400_unless_allowed(alice_api, settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = False
    refused = make_webhook(alice_api, url="http://127.0.0.1:9/hook")
    assert refused.status_code == 400 and "private" in str(refused.json())


def test_a_gotify_endpoint_needs_its_token_and_never_shows_it(alice_api):
    body = {"agent": "gotify", "name": "g", "url": "http://127.0.0.1:9", "events": ["job.failed"]}
    assert alice_api.post(ENDPOINTS, body, format="json").status_code == 400
    made = alice_api.post(ENDPOINTS, {**body, "token": "AppTok-123"}, format="json")
    assert made.status_code == 201
    assert "AppTok-123" not in made.content.decode()
    assert made.json()["secret"] == "••••••••"


def test_send_a_test_delivers_one_test_event_and_lists_it_newest_first(alice_api):
    with http_receiver() as receiver:
        made = make_webhook(alice_api, url=receiver.url).json()
        url = f"{ENDPOINTS}{made['id']}/"
        answer = alice_api.post(f"{url}test/")
        assert answer.status_code == 202 and answer.json()["event"] == "test"
        alice_api.post(f"{url}test/")
        while run_next("notify"):
            pass
    (request, _) = receiver.received
    assert Webhook(made["secret"]).verify(request.body, request.headers)["type"] == "test"
    listed = alice_api.get(f"{url}deliveries/").json()
    assert listed["count"] == 2
    first = listed["results"][0]
    assert set(first) >= {
        "id", "event", "webhook_id", "attempt", "outcome", "status_code", "latency_ms", "next_attempt_at", "created_at",
    }  # fmt: skip
    assert first["id"] > listed["results"][1]["id"]
    assert (first["outcome"], first["status_code"], first["attempt"]) == ("sent", 200, 1)


def test_redeliver_queues_the_delivery_again_with_its_webhook_id(alice_api, bob_api):
    with http_receiver() as receiver:
        made = make_webhook(alice_api, url=receiver.url).json()
        url = f"{ENDPOINTS}{made['id']}/"
        alice_api.post(f"{url}test/")
        run_next("notify")
        delivery = Delivery.objects.get()
        assert bob_api.post(f"{url}deliveries/{delivery.pk}/redeliver/").status_code == 404
        again = alice_api.post(f"{url}deliveries/{delivery.pk}/redeliver/")
        assert again.status_code == 202 and again.json()["outcome"] == "pending"
        run_next("notify")
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.webhook_id] * 2


def test_a_rotated_secret_signs_beside_the_old_one(alice_api):
    with http_receiver() as receiver:
        made = make_webhook(alice_api, url=receiver.url).json()
        url = f"{ENDPOINTS}{made['id']}/"
        rotated = alice_api.post(f"{url}rotate-secret/").json()["secret"]
        assert rotated.startswith("whsec_") and rotated != made["secret"]
        alice_api.post(f"{url}test/")
        run_next("notify")
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (made["secret"], rotated):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "test"


@pytest.mark.parametrize(
    "fields",
    [
        {"agent": "ntfy", "options": {"priority": 9}},
        {"agent": "ntfy", "options": {"priority": "high"}},
        {"agent": "ntfy", "options": {"tags": "tv"}},
        {"agent": "gotify", "token": "t", "options": {"colour": "red"}},
        {"agent": "webhook", "token": "not-a-whsec-secret"},
        {"agent": "discord", "token": "t"},
    ],
)
def test_options_and_tokens_an_agent_cannot_use_answer_400(alice_api, fields):
    body = {"name": "n", "url": "http://127.0.0.1:9/t", "events": ["job.failed"], **fields}
    assert alice_api.post(ENDPOINTS, body, format="json").status_code == 400
    assert not Endpoint.objects.exists()


def test_alice_can_pause_an_endpoint_whose_address_is_refused_since(alice_api, settings):
    made = make_webhook(alice_api, url="http://192.168.1.20/hook").json()
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = False
    url = f"{ENDPOINTS}{made['id']}/"
    assert alice_api.patch(url, {"paused": True, "name": "old ntfy"}, format="json").status_code == 200
    assert Endpoint.objects.get(pk=made["id"]).paused is True
    # Setting the address again is checked, as when it was made.
    assert alice_api.patch(url, {"url": "http://192.168.1.20/hook"}, format="json").status_code == 400


def test_an_email_endpoint_keeps_an_address(alice_api):
    made = alice_api.post(
        ENDPOINTS, {"agent": "email", "name": "me", "to": "alice@example.com", "events": ["job.failed"]}, format="json"
    ).json()
    assert alice_api.patch(f"{ENDPOINTS}{made['id']}/", {"to": ""}, format="json").status_code == 400
    assert Endpoint.objects.get(pk=made["id"]).to == "alice@example.com"


@pytest.mark.parametrize(
    "fields",
    [
        {"name": 7},
        {"paused": 0},
        {"paused": "yes"},
        {"url": "http://exa_mple.com/hook"},
        {"url": "http://example.com/a hook"},
        {"url": "http://example.com:99999/"},
        {"url": "https://"},
    ],
)
def test_a_value_of_another_type_or_shape_than_the_schema_says_answers_400(alice_api, fields):
    assert make_webhook(alice_api, **fields).status_code == 400
    assert not Endpoint.objects.exists()


def test_a_library_id_given_as_text_answers_400(alice_api, alice, library_root):
    from offload.models import Library

    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    assert make_webhook(alice_api, libraries=[str(library.pk)]).status_code == 400
    assert make_webhook(alice_api, libraries=[library.pk]).status_code == 201


def test_an_ntfy_tag_with_a_nul_answers_400(alice_api):
    body = {"agent": "ntfy", "name": "n", "url": "https://ntfy.example/t", "events": ["job.failed"]}
    assert alice_api.post(ENDPOINTS, {**body, "options": {"tags": ["a\x00b"]}}, format="json").status_code == 400
    assert alice_api.post(ENDPOINTS, {**body, "options": {"tags": ["tv"]}}, format="json").status_code == 201


def test_rotating_the_secret_of_an_endpoint_that_has_none_answers_409(alice_api):
    body = {"agent": "discord", "name": "d", "url": "https://discord.example/api/webhooks/1", "events": ["job.failed"]}
    made = alice_api.post(ENDPOINTS, body, format="json").json()
    answer = alice_api.post(f"{ENDPOINTS}{made['id']}/rotate-secret/")
    assert answer.status_code == 409 and "webhook" in answer.json()["detail"]


def test_the_schema_states_each_agents_body(alice_api):
    """The rules the API applies, as the schema says them (tests/fuzz/ checks the two agree)."""
    import re

    from offload.alerts.models import Agent
    from offload.jobs import kinds

    schema = alice_api.get("/api/v1/schema/?format=json").json()
    post = schema["paths"]["/api/v1/notifications/endpoints/"]["post"]["requestBody"]
    assert post["required"] is True
    new = schema["components"]["schemas"]["NewEndpointRequest"]
    assert new["discriminator"]["propertyName"] == "agent"
    assert set(new["discriminator"]["mapping"]) == set(Agent.values)
    shapes = {agent: schema["components"]["schemas"][f"{agent.capitalize()}EndpointRequest"] for agent in Agent.values}
    assert "to" in shapes["email"]["required"] and "url" not in shapes["email"]["properties"]
    assert {"url", "token"} <= set(shapes["gotify"]["required"])
    assert "token" not in shapes["webhook"]["properties"] and "options" not in shapes["discord"]["properties"]
    assert shapes["ntfy"]["properties"]["options"]["properties"]["priority"] == {
        "type": "integer", "minimum": 1, "maximum": 5,
    }  # fmt: skip
    pattern = shapes["webhook"]["properties"]["url"]["pattern"]
    for url in ("https://hooks.example/offload?x=1", "http://10.0.0.5:8080/", "http://[fd00::1]/t"):
        assert re.search(pattern, url), url
    for url in ("ftp://example.com/", "http://exa_mple.com/", "http://a b/", "http://example.com:65536/", "http://"):
        assert not re.search(pattern, url), url
    enum = schema["components"]["schemas"][shapes["webhook"]["properties"]["kinds"]["items"]["$ref"].split("/")[-1]]
    assert enum["enum"] == kinds.names()
