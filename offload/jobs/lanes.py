"""The lanes: each kind runs in one (its registration says which), a django-q2 cluster named after its queue.

Everything about a lane is here: its queue names, the broker per queue, and the brokers the
clusters run.

People first. django-q2's ORM broker hands out a lane's queue rows in no stated order (in
practice the table's), and its rows have no column a priority could live in. So each lane has
two queues, both read by the lane's cluster: `<lane>` for the backlog (pipeline stages a scan
queued) and `<lane>:people` for jobs a person asked for directly. A poll takes the first due
row of the people's queue, and only then the backlog's, each in (due time, id) order: a probe
asked for through the API starts as soon as a worker of its lane is free, however many
scan-queued probes wait. The Redis broker (OFFLOAD_Q_BROKER=redis) keeps one list per lane,
in plain queue order.

Woken at commit. A poll of an empty queue is followed by a pause (the lane's `poll`). With
PostgreSQL, a queue row due now is written together with a NOTIFY on its lane's channel
(`WAKE_SQL`); PostgreSQL delivers it when the transaction commits, and the lane's broker,
LISTENing through the pause, takes the task at once. A missed wake-up costs one poll, no more.

Which lane a cluster serves. Every lane shares django-q2's stat list (its key comes from the
site's `name`), and a stat does not say which lane it belongs to. The brokers save, beside
each stat and with the same short expiry, the lane of the cluster that saved it, so workers
can be counted per lane and a dead lane beside a live one shows as 0.
"""

import select
from datetime import datetime, timedelta
from time import sleep

from django.conf import settings
from django.db import connections
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.status import Stat
from psycopg import sql

from offload.jobs import prepared, quiet
from offload.jobs.kinds import all_kinds, get_kind
from offload.models import Job, JobPriority

_TABLE = OrmQ._meta.db_table
# A task's queue row gone: its acknowledge, whoever sends it (the broker, or the finish, offload/jobs/delivery.py).
DELETE_TASK_SQL = f"DELETE FROM {_TABLE} WHERE id = %s"  # noqa: S608 (a table name from the model)

PEOPLE_SUFFIX = ":people"


def people_key(list_key: str) -> str:
    """The queue of a lane that holds what people asked for."""
    return list_key + PEOPLE_SUFFIX


def wake_channel(queue: str) -> str:
    """The PostgreSQL channel a lane's cluster listens on between polls; one per lane, for both its queues."""
    return f"offload_wake:{queue.removesuffix(PEOPLE_SUFFIX)}"


# The wake-up as an expression, for a statement that writes a queue row (its one parameter: the channel).
# PostgreSQL delivers it when the transaction commits, never for a rollback, and folds repeats.
WAKE_SQL = "pg_notify(%s::text, '')"


class LaneBroker(ORM):
    """The ORM broker over a lane's two queues; it can also write a row due later (`not_before`)."""

    def __init__(self, list_key: str | None = None, not_before: datetime | None = None) -> None:
        super().__init__(list_key=list_key)
        self.not_before = not_before

    def _keys(self) -> tuple[str, str]:
        return self.list_key, people_key(self.list_key)

    def enqueue(self, task) -> int:
        # A row born with its lock in the future is a delayed task: no poll takes it before.
        lock = self.not_before or timezone.now()
        key = self.list_key or Conf.CLUSTER_NAME
        connection = connections[Conf.ORM]
        if connection.vendor != "postgresql" or self.not_before is not None:
            return self.get_connection().create(key=key, payload=task, lock=lock).pk
        self.get_connection()
        with connection.cursor() as cursor:
            # The row and its lane's wake-up in one statement: the NOTIFY is delivered at commit.
            cursor.execute(
                f"INSERT INTO {_TABLE} (key, payload, lock) VALUES (%s, %s, %s) RETURNING id, {WAKE_SQL}",  # noqa: S608
                [key, task, lock, wake_channel(key)],
            )
            return cursor.fetchone()[0]

    def dequeue(self):
        if quiet.this_cluster_is_quiet():
            sleep(Conf.POLL)  # quieted by an operator: its workers finish what they hold
            return None
        backlog, people = self._keys()
        # django-q2's step before each use (stale connections closed), its health check made
        # at most once a second: before every poll, it was a round trip per job taken and 20
        # a second from an idle lane.
        self.get_connection()
        if connections[Conf.ORM].vendor == "postgresql":
            taken = prepared.on_live_connection(lambda: self._take_due(backlog, people))
        else:
            taken = self._take_due_one_by_one(backlog, people)
        if taken:
            return taken
        # An empty queue: spare the CPU, as django-q2's own broker does.
        self.wait_for_work(Conf.POLL)
        return None

    def acknowledge(self, task_id: int) -> None:
        # One statement: django-q2's delete() wraps it in a transaction of its own (BEGIN, DELETE, COMMIT).
        self.get_connection()
        prepared.on_live_connection(lambda: self._delete(task_id))

    def _delete(self, task_id: int) -> None:
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(DELETE_TASK_SQL, [task_id])

    def fail(self, task_id: int) -> None:
        self.acknowledge(task_id)

    _listening_on = None

    def wait_for_work(self, seconds: float) -> bool:
        """The pause after an empty poll, ended early (answer True) by a task committed to this lane."""
        connection = connections[Conf.ORM]
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            sleep(seconds)
            return False
        connection.ensure_connection()
        raw = connection.connection
        # A new database connection (Django closes old ones) listens afresh.
        if self._listening_on is not raw:
            raw.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel(self.list_key))))
            self._listening_on = raw
        # Wait for the socket rather than in psycopg's notifies(): the spine's notify handler on every
        # connection (offload/jobs/events.py) would make that unreliable. The next poll's query
        # reads the notification (the handlers pass over it).
        readable, _, _ = select.select([raw.fileno()], [], [], seconds)
        return bool(readable)

    def _take_due(self, backlog: str, people: str) -> list[tuple[int, str]]:
        """The first due rows, people's first, locked until their retry time: one statement.

        SKIP LOCKED: rows another cluster is taking at this moment are left to it, so two
        clusters never hand out the same row and never wait on each other.
        """
        now = timezone.now()
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f"""
                WITH due AS (
                    SELECT id, key = %s AS asked, lock FROM {_TABLE} WHERE key IN (%s, %s) AND lock < %s
                    ORDER BY (key = %s) DESC, lock, id LIMIT %s
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE {_TABLE} AS q SET lock = %s FROM due WHERE q.id = due.id
                RETURNING q.id, q.payload, due.asked, due.lock
                """,  # noqa: S608 (the table name comes from the model)
                [people, backlog, people, now, people, Conf.BULK, now + timedelta(seconds=Conf.RETRY)],
            )
            rows = cursor.fetchall()
        # RETURNING keeps no order: the people's first, then by due time, as selected.
        return [(row_id, payload) for row_id, payload, _, _ in sorted(rows, key=lambda r: (not r[2], r[3], r[0]))]

    def _take_due_one_by_one(self, backlog: str, people: str) -> list[tuple[int, str]]:
        first = Case(When(key=people, then=Value(0)), default=Value(1), output_field=IntegerField())
        rows = (
            self.get_connection()
            .filter(key__in=(backlog, people), lock__lt=timezone.now())
            .order_by(first, "lock", "id")[: Conf.BULK]
        )
        taken = []
        for row in rows:
            # Another cluster may have been faster: the conditional update decides.
            if self.get_connection().filter(id=row.id, lock=row.lock).update(lock=self.timeout(row)):
                taken.append((row.pk, row.payload))
        return taken

    def queue_size(self) -> int:
        return self.get_connection().filter(key__in=self._keys(), lock__lte=timezone.now()).count()

    def lock_size(self) -> int:
        return self.get_connection().filter(key__in=self._keys(), lock__gt=timezone.now()).count()

    def purge_queue(self):
        return self.get_connection().filter(key__in=self._keys()).delete()


_brokers: dict[str, Broker] = {}


def lane_queue(lane: str) -> str:
    """The queue (django-q2 cluster name) of a lane."""
    return settings.OFFLOAD_LANES[lane]


def job_lanes() -> list[str]:
    """The lanes job kinds run in (the search lane runs index writes, not jobs, unless a kind says so)."""
    return sorted({"default", *(kind.lane for kind in all_kinds())})


def broker_for(list_key: str) -> Broker:
    """One broker per queue and process: django-q2 builds a new one (and connection) per call otherwise."""
    broker = _brokers.get(list_key)
    if broker is None:
        broker = _brokers[list_key] = get_broker(list_key)
    return broker


def shared_broker() -> Broker:
    """The default lane's broker."""
    return broker_for(lane_queue("default"))


def queue_of(job: Job) -> str:
    """The queue the job's task goes to: its kind's lane, and that lane's people queue when a person asked."""
    queue = lane_queue(get_kind(job.kind).lane)
    if job.priority >= JobPriority.PERSON and settings.Q_CLUSTER.get("orm"):
        queue = people_key(queue)
    return queue


def _lane_key(stat_key: str) -> str:
    return f"{stat_key}:lane"


class LaneORMBroker(LaneBroker):
    """The ORM broker (people first, above); its cluster stats (in the state Redis) carry their lane."""

    def set_stat(self, key: str, value: str, timeout: int):
        saved = super().set_stat(key, value, timeout)
        if self.cache:
            self.cache.set(_lane_key(key), Conf.CLUSTER_NAME, timeout)
        return saved


class LaneRedisBroker(Redis):
    """The Redis broker; its cluster stats carry their lane, and a quiet cluster takes nothing (offload.jobs.quiet)."""

    def dequeue(self):
        if quiet.this_cluster_is_quiet():
            sleep(Conf.POLL)
            return None
        return super().dequeue()

    def set_stat(self, key: str, value: str, timeout: int):
        saved = super().set_stat(key, value, timeout)
        self.connection.set(_lane_key(key), Conf.CLUSTER_NAME, timeout)
        return saved


def lane_of(stat: Stat, broker, default: str) -> str:
    """The lane a cluster's stat belongs to; `default` for a cluster that did not say."""
    lane = broker.get_stat(_lane_key(Stat.get_key(stat.cluster_id)))
    if isinstance(lane, bytes):
        lane = lane.decode()
    return lane or default


def live_clusters_per_lane() -> dict[str, list[Stat]]:
    """Every lane (settings.OFFLOAD_LANES) with the stats of its clusters that report in and are not stopping.

    Every lane is a key, so a dead lane beside a live one shows as an empty list. A cluster
    whose queue is no declared lane is listed under its queue's name.
    """
    per_lane: dict[str, list[Stat]] = {lane: [] for lane in settings.OFFLOAD_LANES}
    lane_of_queue = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    broker = get_broker()
    for stat in Stat.get_all(broker):
        if stat.status != Conf.STOPPED:
            queue = lane_of(stat, broker, default=settings.Q_CLUSTER["name"])
            per_lane.setdefault(lane_of_queue.get(queue, queue), []).append(stat)
    return per_lane


def cluster_stat(cluster_id: str) -> Stat | None:
    """The stat of the reporting cluster with this id (django-q2's cluster UUID), or None."""
    return next((stat for stat in Stat.get_all(get_broker()) if str(stat.cluster_id) == cluster_id), None)
