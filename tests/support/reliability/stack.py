"""One reliability test's world: its own database, the app's real processes on private services.

The test process never opens the app's database through Django (pytest-django's test database
lives on the shared server). It creates work through the HTTP API, reads effects with plain SQL,
and runs what only the app can do (seeding, the reaper) in `manage.py` subprocesses.
"""

import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from tests.support.media import make_video
from tests.support.reliability import seed
from tests.support.reliability.processes import AppProcess, WebServer, app_env, manage, wait_until
from tests.support.reliability.services import PrivatePostgres, PrivateRedis
from tests.support.services import API_KEY, TypesenseServer
from tests.support.waiting import wait_for

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Person:
    """A seeded user and their API token."""

    username: str
    id: int
    token: str


@dataclass
class Services:
    """What the session shares: the private servers, the migrated template database, people, clips."""

    postgres: PrivatePostgres
    redis: PrivateRedis
    typesense: TypesenseServer
    template: str
    people: dict[str, Person]
    clips: dict[str, Path]


TEMPLATE = "offload_template"


def prepare_services(
    postgres: PrivatePostgres, redis: PrivateRedis, typesense: TypesenseServer, folder: Path
) -> Services:
    """Migrate a template database on the private PostgreSQL, seed the people, make the media clips."""

    def make_clips() -> dict[str, Path]:
        # short: probed and thumbnailed in a blink; long: a transcode that runs for a few seconds.
        return {
            "short": make_video(folder / "clips" / "short.mp4", seconds=2, size="160x90"),
            "long": make_video(folder / "clips" / "long.mp4", seconds=40, size="320x180"),
        }

    postgres.execute(f"CREATE DATABASE {TEMPLATE}")
    env = app_env(DATABASE_URL=postgres.url(TEMPLATE), REDIS_URL=redis.url, PROMETHEUS_MULTIPROC_DIR=str(folder))
    with ThreadPoolExecutor(1) as pool:
        clips = pool.submit(make_clips)
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "schedules")
        code = "from tests.support.reliability.seed import seed_people; seed_people()"
        people = seed.parse(manage(env, "shell", "--no-imports", "-c", code))
        return Services(
            postgres=postgres,
            redis=redis,
            typesense=typesense,
            template=TEMPLATE,
            people={name: Person(name, p["id"], p["token"]) for name, p in people.items()},
            clips=clips.result(),
        )


def new_stack(services: Services, folder: Path) -> "Stack":
    """A stack on a fresh copy of the template database and an empty Redis."""
    database = f"rel_{uuid.uuid4().hex[:10]}"
    services.postgres.execute(f"CREATE DATABASE {database} TEMPLATE {services.template}")
    services.redis.client().flushall()
    return Stack(services, folder, database)


class Database:
    """Plain SQL reads of the stack's database, reconnecting after a server restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None

    def rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """All rows of a query; one reconnect when the server went away meanwhile."""
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def value(self, sql: str, params: tuple | list = ()) -> Any:
        """The first column of the first row, or None."""
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        """Close the connection (the next read opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Attempt:
    """One HTTP request a client made, and how it ended."""

    path: str
    status: int | None
    error: str = ""
    at: float = field(default_factory=time.monotonic)


class Api:
    """A user's API client that keeps asking until its job is accepted, as a careful client does.

    Every job-creating POST carries an Idempotency-Key, so asking again after a dropped
    connection or a 5xx can never create a second job.
    """

    def __init__(self, stack: "Stack", person: Person) -> None:
        self.stack = stack
        self.person = person
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {person.token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to the stack's web server, as this user."""
        return self.session.request(method, f"{self.stack.web_url}{path}", timeout=10, **kwargs)

    def get(self, path: str) -> Any:
        """GET that must answer 200; answer the JSON."""
        response = self.request("GET", path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.json()

    def post(self, path: str, body: dict) -> Any:
        """POST that must create (201); answer the JSON."""
        response = self.request("POST", path, json=body)
        assert response.status_code == 201, (path, response.status_code, response.text[:500])
        return response.json()

    def library(self, folder: Path) -> int:
        """Create a library for a folder under the library root; answer its id."""
        return self.post("/api/v1/libraries/", {"name": folder.name, "path": str(folder)})["id"]

    def items(self, library: int) -> dict[str, int]:
        """The library's items: relative path → id."""
        answer = self.get(f"/api/v1/media/?library={library}")
        return {item["relative_path"]: item["id"] for item in answer["results"]}

    def create_job(self, path: str, body: dict | None = None, timeout: float = 60.0) -> dict:
        """POST until the API accepts the job (2xx); answer the job JSON and count it as accepted."""
        key = uuid.uuid4().hex

        def accepted() -> dict | None:
            try:
                response = self.request("POST", path, json=body, headers={"Idempotency-Key": key})
            except requests.RequestException as exc:
                self.stack.attempts.append(Attempt(path, None, type(exc).__name__))
                return None
            self.stack.attempts.append(Attempt(path, response.status_code))
            if response.status_code in (200, 202):
                job = response.json()
                self.stack.accepted.setdefault(job["id"], job)
                return job
            assert response.status_code in (429, 500, 502, 503), (path, response.status_code, response.text)
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", "1")))
            return None

        def recent_attempts() -> str:
            return f"attempts: {self.stack.attempts[-5:]}"

        return wait_for(accepted, timeout, f"{path} to be accepted", interval=0.2, logs=recent_attempts)


class Stack:
    """A fresh database (from the migrated template), a flushed Redis, an index alias of its own."""

    def __init__(self, services: Services, folder: Path, database: str) -> None:
        self.services = services
        self.folder = folder
        self.database = database
        self.library_root = folder / "library"
        self.media_root = folder / "output"
        self.logs = folder / "logs"
        for path in (self.library_root, self.media_root, self.logs, folder / "prometheus"):
            path.mkdir(parents=True, exist_ok=True)
        self.alias = f"rel{uuid.uuid4().hex[:10]}"
        self.env = app_env(
            DATABASE_URL=services.postgres.url(database),
            REDIS_URL=services.redis.url,
            REDIS_KEY_PREFIX="offload",
            TYPESENSE_URL=services.typesense.url,
            TYPESENSE_API_KEY=API_KEY,
            OFFLOAD_SEARCH_ALIAS=self.alias,
            OFFLOAD_LIBRARY_ROOTS=str(self.library_root),
            MEDIA_ROOT=str(self.media_root),
            PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"),
            # Index writes refused while Typesense is away are retried within a second, not 30.
            OFFLOAD_SEARCH_SYNC_RETRY="0.2",
            OFFLOAD_SEARCH_Q_WORKERS="1",
        )
        self.db = Database(services.postgres.url(database))
        self.processes: list[AppProcess] = []
        self.web_server: WebServer | None = None
        # Job id → the JSON the API answered when it accepted the job.
        self.accepted: dict[int, dict] = {}
        self.attempts: list[Attempt] = []

    # --- processes ---------------------------------------------------------------

    def configure(self, **env: str) -> None:
        """Settings for every process started from now on (and for `manage` commands)."""
        self.env.update(env)

    def qcluster(self, **env: str) -> AppProcess:
        """A default-lane qcluster (OFFLOAD_Q_WORKERS workers)."""
        n = sum(p.name.startswith("qcluster") for p in self.processes)
        process = AppProcess(
            f"qcluster-{n}",
            [sys.executable, "manage.py", "qcluster"],
            {**self.env, **env},
            self.logs / f"qcluster-{n}.log",
        )
        self.processes.append(process)
        return process.start()

    def media_lane(self, **env: str) -> AppProcess:
        """The media lane's qcluster: runs transcodes."""
        n = sum(p.name.startswith("media-lane") for p in self.processes)
        env = {**self.env, "Q_CLUSTER_NAME": "media", **env}
        process = AppProcess(
            f"media-lane-{n}", [sys.executable, "manage.py", "qcluster"], env, self.logs / f"media-{n}.log"
        )
        self.processes.append(process)
        return process.start()

    def search_lane(self) -> AppProcess:
        """The search lane's qcluster: drains the index outbox."""
        env = {**self.env, "Q_CLUSTER_NAME": "search"}
        process = AppProcess("search-lane", [sys.executable, "manage.py", "qcluster"], env, self.logs / "search.log")
        self.processes.append(process)
        return process.start()

    def web(self, **env: str) -> WebServer:
        """uvicorn serving HTTP and websockets on one port, as `make run` does."""
        server = WebServer({**self.env, **env}, self.logs / "uvicorn.log")
        self.processes.append(server)
        self.web_server = server
        return server.start()

    def start(self) -> AppProcess:
        """The web server, one default-lane qcluster, the media lane and the search lane; answer the qcluster."""
        self.web()
        cluster = self.qcluster()
        self.media_lane()
        self.search_lane()
        return cluster

    @property
    def web_url(self) -> str:
        """The web server's base URL (unchanged across its restarts)."""
        assert self.web_server is not None, "start the web server first"
        return self.web_server.url

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run a manage.py command against this stack; answer its stdout."""
        return manage(self.env, *args, timeout=timeout)

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` against this stack; answer its stdout."""
        return manage(self.env, "shell", "--no-imports", "-c", code)

    def reap_stale_jobs(self) -> int:
        """What the minutely schedule runs: hand running jobs whose worker died to a new delivery."""
        out = self.shell("from offload.jobs.reaper import reap_stale_jobs; print('REAPED', reap_stale_jobs())")
        return int(out.split("REAPED", 1)[1].split()[0])

    def logs_tail(self) -> str:
        """What a timeout message shows: the active jobs, the queue rows and every process's log."""
        try:
            active = self.db.rows(
                "SELECT id, kind, status, attempts, progress, heartbeat_at, error FROM offload_job"
                " WHERE status IN ('queued', 'running') ORDER BY id"
            )
            queue = self.db.rows("SELECT id, key, lock FROM django_q_ormq ORDER BY id")
        except psycopg.Error as exc:
            active = queue = [f"(unreadable: {exc})"]
        return "\n".join(
            [f"--- active jobs ---\n{active}\n--- queue rows ---\n{queue}"] + [p.tail() for p in self.processes]
        )

    def close(self) -> None:
        """Kill the processes and drop the database."""
        for process in reversed(self.processes):
            process.kill()
        self.db.close()
        self.services.postgres.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        shutil.rmtree(self.media_root, ignore_errors=True)

    # --- people and reads ---------------------------------------------------------------

    def api(self, username: str) -> Api:
        """An API client for one of the seeded people."""
        return Api(self, self.services.people[username])

    def media_folder(self, name: str, files: dict[str, str]) -> Path:
        """A folder under the library root holding the session's clips: {file name: clip name}."""
        folder = self.library_root / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, clip in files.items():
            try:
                os.link(self.services.clips[clip], folder / filename)
            except OSError:
                shutil.copyfile(self.services.clips[clip], folder / filename)
        return folder

    def job_statuses(self) -> dict[int, str]:
        """Every job's status, by id."""
        return dict(self.db.rows("SELECT id, status FROM offload_job"))

    def active_jobs(self) -> int:
        """How many jobs are queued or running."""
        return self.db.value("SELECT count(*) FROM offload_job WHERE status IN ('queued', 'running')")

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """wait_until(), with this stack's jobs, queue and logs in the failure message."""
        return wait_until(predicate, timeout, what, self.logs_tail)

    def scanned(self, client: "Api", folder: Path) -> dict[str, int]:
        """The client's new library on folder, scanned: its items' ids by file name."""
        library = client.library(folder)
        scan = client.create_job(f"/api/v1/libraries/{library}/scan/")
        self.wait_until(lambda: self.job_statuses()[scan["id"]] == "succeeded", 60, "the scan")
        return client.items(library)

    def wait_for_a_transcode_under_way(self, job_ids: list[int] | None = None) -> None:
        """Some transcode (of job_ids, when given) is running and has reported progress."""
        sql = "SELECT count(*) FROM offload_job WHERE kind = 'media.transcode' AND status = 'running' AND progress > 0"
        params: list = []
        if job_ids is not None:
            sql, params = sql + " AND id = ANY(%s)", [job_ids]
        self.wait_until(lambda: self.db.value(sql, params), 90, "a transcode to be under way")

    def wait_for_jobs_to_settle(self, timeout: float) -> None:
        """Every job, the ones the pipeline queued included, reaches a final status."""
        self.wait_until(lambda: self.active_jobs() == 0, timeout, "every job to finish")
