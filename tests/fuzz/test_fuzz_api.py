"""Every API operation fuzzed from its OpenAPI schema with every check schemathesis has: never a 5xx,
every answer as the schema says, valid input accepted and invalid input refused."""

import ipaddress
import uuid
from urllib.parse import urlsplit

import hypothesis
import jsonschema
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck
from rest_framework.authtoken.models import Token
from schemathesis.core.parameters import ParameterLocation

from config.wsgi import application
from offload.alerts.models import Agent, Endpoint
from offload.models import Job, JobStatus, Library, MediaItem
from search import sync
from search.query import SearchRequest, search_media
from tests.support.people import make_user

pytestmark = pytest.mark.django_db

# Enough to reach every parameter and both generation modes (valid and invalid input) per
# operation, within a minute for the whole API.
EXAMPLES_PER_OPERATION = 25
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """As Django's test client does: a request must not close the connection holding the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(library_root, settings):
    """Alice with a library, items and jobs in every status, so generated ids can hit real rows."""
    # The fuzzer sends hundreds of requests a minute: every limit is lifted so it reaches past the
    # 429s (the limits themselves are tested in test_rate_limits.py).
    settings.OFFLOAD_RATE_LIMITS = dict.fromkeys(settings.OFFLOAD_RATE_LIMITS, "1000000/60")
    alice = make_user("alice")
    (library_root / "films").mkdir()
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    items = [
        MediaItem.objects.create(library=library, relative_path=f"film-{n}.mkv", title=f"Film {n}", kind="movie")
        for n in range(3)
    ]
    now = timezone.now()
    jobs = [
        Job.objects.create(
            kind="media.probe",
            target_type="media",
            target_id=items[n % len(items)].pk,
            params={"n": n},
            params_hash=f"fuzz-{n}",
            status=status,
            requested_by=alice,
            error="boom" if status == JobStatus.FAILED else None,
            finished_at=now if status not in (JobStatus.QUEUED, JobStatus.RUNNING) else None,
        )
        for n, status in enumerate(JobStatus.values)
    ]
    # One endpoint per agent: a change's token and options fit some agents only. The webhook's
    # loopback URL is refused for new endpoints here (OFFLOAD_NOTIFY_ALLOW_PRIVATE is off, as in
    # production), yet a change that leaves it alone must go through.
    endpoints = {
        agent: Endpoint.objects.create(
            owner=alice,
            name=agent,
            agent=agent,
            url={Agent.WEBHOOK: "http://127.0.0.1:9/", Agent.EMAIL: ""}.get(agent, "https://push.example/t"),
            to="alice@example.com" if agent == Agent.EMAIL else "",
            events=["job.failed"],
            secret="whsec_MTIz" if agent == Agent.WEBHOOK else ("tok" if agent == Agent.GOTIFY else ""),
        )
        for agent in Agent.values
    }
    return {
        "user": alice,
        "token": Token.objects.get_or_create(user=alice)[0].key,
        "ids": {
            "libraries": [library.pk],
            "media": [item.pk for item in items],
            "jobs": [job.pk for job in jobs],
            "notifications": [endpoint.pk for endpoint in endpoints.values()],
        },
        "endpoints": {agent: endpoint.pk for agent, endpoint in endpoints.items()},
    }


@pytest.fixture
def indexed_world(world, index):
    """The same world, with Alice's items in a real Typesense index: searches are answered by it."""
    assert sync.sync_pending().upserted == len(world["ids"]["media"])
    # Asked directly: Django's test client would reconnect what _keep_the_test_transaction disconnected.
    answer = search_media(world["user"], SearchRequest(q="film"))
    assert answer["degraded"] is False and answer["found"] == len(world["ids"]["media"])
    return world


# Loaded at collection: one test per operation. The schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


def aim_at_real_rows(case, ids: dict[str, list[int]]) -> None:
    """Point most generated ids at Alice's rows; every fifth stays as generated (a 404, or bad input)."""
    value = case.path_parameters.get("id") if case.path_parameters else None
    if not isinstance(value, int) or isinstance(value, bool) or value % 5 == 0:
        return
    resource = case.path.split("/")[3]
    known = ids[resource]
    case.path_parameters["id"] = known[value % len(known)]


def aim_endpoint_bodies(case, world: dict) -> None:
    """A notification endpoint's body, aimed at what it may only name: libraries are Alice's
    (a valid id becomes hers), and a change goes to one of her endpoints whose agent takes the
    body's token and options, as the agent's shape in the POST's oneOf says."""
    body = case.body
    if "/notifications/endpoints/" not in case.path or not isinstance(body, dict):
        return
    libraries = body.get("libraries")
    if isinstance(libraries, list):
        mine = world["ids"]["libraries"]
        body["libraries"] = [mine[0] if _is_int(pk) and 0 < pk < 2**63 else pk for pk in libraries]
    endpoint = (case.path_parameters or {}).get("id")
    if case.method != "PATCH" or endpoint not in world["ids"]["notifications"]:
        return
    fitting = [agent for agent in world["endpoints"] if _agent_takes(agent, body)]
    if not fitting and not case.meta.is_negative_at(ParameterLocation.BODY):
        # Valid by the schema, yet fields of two agents (a token beside email options, say): the
        # agent the options name keeps what it takes, as the fields' descriptions say.
        agent = next(agent for agent in world["endpoints"] if _agent_takes(agent, {"options": body.get("options")}))
        for name in ("token", "smtp_password", "to", "url"):
            if name in body and not _agent_takes(agent, {name: body[name]}):
                del body[name]
        fitting = [agent]
    if fitting:
        case.path_parameters["id"] = world["endpoints"][fitting[0]]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(agent: str) -> dict:
    """The properties of a new endpoint's body for this agent, as the schema states them."""
    return schema.raw_schema["components"]["schemas"][f"{agent.capitalize()}EndpointRequest"]["properties"]


def _valid(value, name: str) -> bool:
    """Whether a value is valid for an endpoint's field, as the webhook's shape states it."""
    return jsonschema.Draft4Validator(_shape(Agent.WEBHOOK)[name]).is_valid(value)


def _agent_takes(agent: str, body: dict) -> bool:
    """Whether an endpoint of this agent takes the change: its secrets, options and address as
    the agent's shape says them (an email endpoint keeps an address, a webhook takes no token)."""
    shape = _shape(agent)
    for secret in ("token", "smtp_password"):
        if isinstance(body.get(secret), str) and body[secret].strip() and secret not in shape:
            return False
    if isinstance(body.get("options"), dict) and body["options"] and "options" not in shape:
        return False
    own = [name for name in ("to", "url", "options") if name in shape and name in body]
    return all(jsonschema.Draft4Validator(shape[name]).is_valid(body[name]) for name in own)


def _names_an_address(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return True  # a bracketed host that is no address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return True


def keep_documented_rules(case) -> None:
    """What the schema says in words, which no generator reads: a search's year_to is not before its
    year_from (OpenAPI has no rule across two parameters), and an Idempotency-Key sent again with a
    different request answers 422 (state, as a 409 is: each call gets a key of its own); a
    notification endpoint's URL (or SMTP host) naming an address must name one the address rules allow."""
    query = case.query if isinstance(case.query, dict) else {}
    try:
        years = sorted((int(query["year_from"]), int(query["year_to"])))
    except (KeyError, TypeError, ValueError):
        years = None
    if years is not None:
        query["year_from"], query["year_to"] = years
    if "/notifications/endpoints/" in case.path and isinstance(case.body, dict):
        # An endpoint's agent is chosen when it is made: a PATCH naming another answers 400 (state,
        # as a 409 is). A value that is no agent at all stays: it may be what the case made invalid.
        if case.method == "PATCH" and case.body.get("agent") in Agent.values:
            case.body.pop("agent")
        # A URL that names an address (not a host name) must be one the address rules allow, as
        # its description says; a pattern cannot, and they depend on OFFLOAD_NOTIFY_ALLOW_PRIVATE.
        url = case.body.get("url")
        if _valid(url, "url") and _names_an_address(url):
            case.body["url"] = "https://hooks.example/offload"
        options = case.body.get("options")
        host = options.get("smtp_host") if isinstance(options, dict) else None
        smtp_host = _shape(Agent.EMAIL)["options"]["properties"]["smtp_host"]
        if jsonschema.Draft4Validator(smtp_host).is_valid(host) and _names_an_address(f"http://{host}/"):
            options["smtp_host"] = "smtp.example"
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex + key[32:]


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_answers_every_generated_request_as_its_schema_says(case, world):
    aim_at_real_rows(case, world["ids"])
    aim_endpoint_bodies(case, world)
    keep_documented_rules(case)
    case.call_and_validate(headers={"Authorization": f"Token {world['token']}"})


# Without TYPESENSE_URL the test above searches the database fallback; this one, Typesense itself.
@schema.include(path="/api/v1/search/").parametrize()
@FUZZ_SETTINGS
def test_search_answers_every_generated_query_from_typesense_as_its_schema_says(case, indexed_world):
    keep_documented_rules(case)
    case.call_and_validate(headers={"Authorization": f"Token {indexed_world['token']}"})


@pytest.fixture
def rendition_file(settings, library_root):
    """A published rendition of alice's item, and alice's API client."""
    from tests.support.people import api_client_for

    alice = make_user("alice")
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    path = settings.MEDIA_ROOT / f"renditions/{item.pk}/h264-480p.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 8)
    return api_client_for(alice), f"/media/renditions/{item.pk}/h264-480p.mp4", path.read_bytes()


@hypothesis.given(
    header=hypothesis.strategies.one_of(
        hypothesis.strategies.text(max_size=60),
        hypothesis.strategies.builds(
            lambda a, b: f"bytes={a}-{b}",
            hypothesis.strategies.one_of(hypothesis.strategies.none(), hypothesis.strategies.integers(-5, 5000)),
            hypothesis.strategies.one_of(hypothesis.strategies.none(), hypothesis.strategies.integers(-5, 5000)),
        ),
    )
)
@hypothesis.settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_any_range_header_on_media_answers_200_206_or_416_with_the_right_bytes(rendition_file, header):
    client, url, body = rendition_file
    header = header.replace("None", "")
    try:
        answer = client.get(url, HTTP_RANGE=header)
    except UnicodeEncodeError:
        return  # not a header a client can send
    assert answer.status_code in (200, 206, 416), (header, answer.status_code)
    assert answer["Accept-Ranges"] == "bytes"
    if answer.status_code == 206:
        first, last = map(int, answer["Content-Range"].split(" ")[1].split("/")[0].split("-"))
        assert b"".join(answer.streaming_content) == body[first : last + 1]
    elif answer.status_code == 200:
        assert b"".join(answer.streaming_content) == body
