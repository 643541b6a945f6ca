"""JobEvent: the append-only log of job state changes that clients replay, and its one seam.

Every change of a job passes through `record_event()`. Inside its transaction the
`job_event_recorded` signal lets the notification outbox write its rows. Once the change commits, the
`job_event_committed` signal carries the event to whoever subscribed in their app's
`ready()`: the API cache (its job answers are stale) and the websocket publisher. The spine
knows neither of them.

Numbering, and why no event is ever skipped
-------------------------------------------
Every event gets one global `seq`; each user's stream is the subsequence they may see, so
one order serves the staff stream, each owner and each joiner alike. Clients rely on one
property: once an event with seq N is visible, every event with a lower seq is visible too
(committed) or will never exist. The websocket consumer sends the live event N only after
replaying, from the table, whatever lies between the client's last seq and N; a resume
replays "after N" from the table. Both are exact only under that property.

Taking the number at INSERT breaks it unless the number is held under a lock until commit:
T1 takes 7, T2 takes 8, T2 commits first, a client sees 8, then 7 commits and is never sent.
Offload used to hold the one counter row's lock from the INSERT through the queue row, the
job UPDATE and the COMMIT, so every request and every worker in the system queued behind
each other's round trips.

On PostgreSQL the number is now taken at COMMIT: the event is inserted with seq NULL, and a
deferred constraint trigger (migration 0011) numbers it while the transaction commits. The
trigger updates the counter row, so two committing transactions still take turns, but the
lock is held only from the trigger to the end of that same commit: no client round trip
happens in between. Why the property holds: T2 can take its number only once T1 has
released the counter row, and PostgreSQL releases a transaction's locks only after it has
marked the transaction committed and visible (ProcArrayEndTransaction precedes the lock
release in CommitTransaction). So when seq 8 exists at all, 7 is already visible. A
transaction that rolls back never reaches its commit-time trigger and takes no number, so
the global order also has no holes. Inside the inserting transaction the row's seq is NULL;
nothing outside can see the row before it commits.

The committing session learns its numbers without another round trip: the trigger sends
them with pg_notify on a channel only that session listens on (`offload_seq_<backend pid>`),
and PostgreSQL delivers a session's own notifications with its COMMIT's answer. Should one
be missing, the number is read back.

SQLite (the embedded run) allows one writer at a time, so numbering at INSERT is already in
commit order there.
"""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.backends.signals import connection_created
from django.dispatch import Signal
from django.utils import timezone

from offload.jobs.payload import job_payload
from offload.models import FINISHED_STATUSES, EventSequence, Job, JobEvent, JobStatus

# Sent once the transaction that recorded the event has committed, never for a rolled-back one.
# Arguments: event (the JobEvent row, its payload the job's JSON at that moment).
job_event_committed = Signal()
# Sent as the event is recorded, inside the transaction that changed the job: a receiver's
# writes (an outbox row) commit with the change or roll back with it. Keep receivers quick;
# anything that leaves the process belongs to job_event_committed. Arguments: event, job.
job_event_recorded = Signal()

# A receiver of job_event_recorded names what it may write for: predicate(job, event) in Python
# (job is None where the caller has not read it yet, a claim's "started"), and the same question
# as SQL on the job row (alias j). A change recorded in one statement (offload/jobs/statements.py)
# is taken only where the SQL says no receiver would write: otherwise the change goes the
# transactional way, through record_event, so the receiver's rows commit with it.
_wanted: list[tuple[Callable[[Job | None, str], bool], str]] = []


# What an event is to those who count jobs, kept on the row object (`event.moment`, never stored):
# the job's first entry into the queue (created, or retried by a person), a requeue (a backoff,
# a deferral, a lost attempt), an attempt's start, a final status, or progress.
FIRST_QUEUE, REQUEUE, START, FINISH, PROGRESS = "first-queue", "requeue", "start", "finish", "progress"


def moment_of(event: str, *, requeue: bool = False) -> str:
    """What the event is to the counters: FIRST_QUEUE, REQUEUE, START, FINISH or PROGRESS."""
    if event == JobStatus.QUEUED:
        return REQUEUE if requeue else FIRST_QUEUE
    if event == "started":
        return START
    return FINISH if event in FINISHED_STATUSES else PROGRESS


def announce_at_commit(record: JobEvent, *, nobody_joined: bool, requeue: bool = False) -> None:
    """Mark what the event is for its subscribers and announce it once its transaction commits."""
    record.nobody_joined = nobody_joined
    record.moment = moment_of(record.event, requeue=requeue)
    # Only committed state leaves the process: a rolled-back change is never announced.
    transaction.on_commit(lambda: announce_committed(record), robust=True)


def record_in_transaction_when(predicate: Callable[[Job | None, str], bool], sql: str) -> None:
    """Register a job_event_recorded receiver's interest (from its app's ready())."""
    if (predicate, sql) not in _wanted:
        _wanted.append((predicate, sql))


def wanted_in_transaction_sql(job: Job | None, event: str) -> str:
    """SQL (alias j) true when a receiver of job_event_recorded would write for this event; "FALSE" when none may."""
    conditions = [f"({sql})" for predicate, sql in _wanted if predicate(job, event)]
    return " OR ".join(conditions) or "FALSE"


def next_seq() -> int:
    """Take the next event seq at INSERT (SQLite); the row lock is held until the transaction ends."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(EventSequence._meta.db_table)
    # One round trip: the UPDATE takes the row lock and RETURNING hands back the new value.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq")  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        # The row is created by a data migration; this covers a database flushed by tests.
        EventSequence.objects.get_or_create(pk=1)
        return next_seq()
    return row[0]


def numbered_at_commit() -> bool:
    """Whether the database numbers events as they commit (PostgreSQL) rather than at INSERT."""
    return transaction.get_connection().vendor == "postgresql"


def record_event(job: Job, event: str, *, nobody_joined: bool = False, requeue: bool = False) -> JobEvent:
    """Append a JobEvent for the job's current state, inside the caller's transaction.

    nobody_joined: the caller knows that nobody besides the requester can see the event: this
    transaction created the job, or its UPDATE of the job row (which a join must wait for) read
    `has_members` False. Kept on the row object (`event.nobody_joined`) for the subscribers.
    requeue: a queued event that puts the job back (not its first entry): `event.moment`.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction that changed the job")
    seq = None if numbered_at_commit() else next_seq()
    record = JobEvent.objects.create(
        seq=seq, job=job, user_id=job.requested_by_id, event=event, payload=job_payload(job)
    )
    record.nobody_joined = nobody_joined
    # Not robust: a receiver that fails rolls the change back rather than lose its outbox row.
    job_event_recorded.send(sender=JobEvent, event=record, job=job)
    announce_at_commit(record, nobody_joined=nobody_joined, requeue=requeue)
    return record


def announce_committed(record: JobEvent) -> None:
    """Send job_event_committed for an event whose transaction has committed."""
    if record.seq is None:
        # Numbered as its transaction committed: the trigger told this session the number
        # with the COMMIT's answer; read it back only when that notice is missing.
        record.seq = _numbers_heard(transaction.get_connection()).pop(record.pk, None)
        if record.seq is None:
            record.seq = JobEvent.objects.filter(pk=record.pk).values_list("seq", flat=True).first()
    # Robust: a subscriber that fails is logged by Django and keeps the event from no other.
    job_event_committed.send_robust(sender=JobEvent, event=record)


def _numbers_heard(connection) -> dict[int, int]:
    """Event id → seq, as this connection's session heard them from the numbering trigger."""
    return getattr(connection, "offload_event_numbers", {})


def listen_for_numbers(sender, connection, **kwargs) -> None:
    """connection_created: listen on this session's own channel for the numbers its commits take."""
    if connection.vendor != "postgresql":
        return
    raw = connection.connection
    heard = connection.offload_event_numbers = getattr(connection, "offload_event_numbers", {})
    if getattr(raw, "offload_listening", False):
        return  # a pooled connection handed out again: already listening

    channel = f"offload_seq_{raw.info.backend_pid}"

    def hear(notice) -> None:
        # The session may listen on other channels too (the notify lane's wake-up).
        if notice.channel != channel:
            return
        event_id, _, seq = notice.payload.partition(" ")
        heard[int(event_id)] = int(seq)

    raw.add_notify_handler(hear)
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {channel}")
    raw.offload_listening = True


def connect() -> None:
    """Listen for event numbers on every PostgreSQL connection (from OffloadConfig.ready())."""
    connection_created.connect(listen_for_numbers, dispatch_uid="offload.jobs.events.numbers")


def prune_events() -> int:
    """Delete events older than the retention window; run by a django-q2 schedule."""
    cutoff = timezone.now() - timedelta(hours=settings.OFFLOAD_EVENT_RETENTION_HOURS)
    deleted, _ = JobEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
