"""The lane broker: django-q2's ORM broker, taking the tasks people asked for first.

django-q2's ORM broker hands out a lane's queue rows in no stated order (in practice the
table's), and its rows have no column a priority could live in. So each lane has two
queues, both read by the lane's cluster: `<lane>` for the backlog (pipeline stages a scan
queued) and `<lane>:people` for jobs a person asked for directly. A poll takes the first
due row of the people's queue, and only then the backlog's, each in (due time, id) order:
a probe asked for through the API starts as soon as a worker of its lane is free, however
many scan-queued probes wait. The Redis broker (OFFLOAD_Q_BROKER=redis) keeps one list per
lane, in plain queue order.
"""

from datetime import datetime, timedelta
from time import sleep

from django.db import connections
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

_TABLE = OrmQ._meta.db_table

PEOPLE_SUFFIX = ":people"


def people_key(list_key: str) -> str:
    """The queue of a lane that holds what people asked for."""
    return list_key + PEOPLE_SUFFIX


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
        return self.get_connection().create(key=self.list_key or Conf.CLUSTER_NAME, payload=task, lock=lock).pk

    def dequeue(self):
        backlog, people = self._keys()
        self.get_connection()  # django-q2's step before each use: stale connections closed
        if connections[Conf.ORM].vendor == "postgresql":
            taken = self._take_due(backlog, people)
        else:
            taken = self._take_due_one_by_one(backlog, people)
        if taken:
            return taken
        # An empty queue: spare the CPU, as django-q2's own broker does.
        self.wait_for_work(Conf.POLL)
        return None

    def wait_for_work(self, seconds: float) -> bool:
        """The pause after an empty poll; a lane told of new work may end it early (answer True then)."""
        sleep(seconds)
        return False

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
