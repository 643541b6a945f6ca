"""The job spine: its public API.

Code outside the spine (handlers, the API, the admin, metrics, search) imports from here, and
only what `__all__` lists (tests/test_architecture.py holds it): names, and a few modules whole
where their readers use many of their names (`kinds`, `waiting`, `rollups`, `attempts`,
`control`, `payload`, `accept`, `quiet`, `overview`). Inside, the modules import each other
directly:

- `kinds`: the registry of job kinds;
- `accept`: a person's request for a job, accepted in one statement;
- `transitions`: the worker's changes of a job's status (enqueue, claim, finish, a retry after a
  failure, defer, a lost attempt); their SQL is the job queryset's (offload/models.py, `JobQuerySet`);
- `requests`: a person's requests on an existing job, cancel and retry;
- `liveness`: a running attempt's heartbeat (progress, partial result) and its cancel check;
- `identity`: what makes two requests the same job, and the row every way of creating one writes;
- `idempotency`: the Idempotency-Key store (on the job row);
- `pipeline`: a request meeting its active twin: a pipeline's later stages join it, a person's
  request promotes it;
- `statements`: the worker's claim, progress and finish as one statement each;
- `prepared`: the cursor that prepares those statements and the accept's once per connection, on a
  connection health-checked at most once a second;
- `cancel_flags`: the Redis flags that tell a running job's worker to stop;
- `attempts`: each attempt's history row (times, host/pid, outcome, error, log tail), in both
  forms the transitions take;
- `waiting`: why a queued job waits (`waiting_reason`) and whether a running job's worker is lost;
- `queue`: the django-q2 side, writing the task of a job's next attempt to its kind's lane;
- `lanes`: the lanes, their queues (people's first), the brokers their clusters run and the
  wake-up a committed task sends its lane;
- `delivery`: the task a worker is running, which the job's finish acknowledges;
- `quiet`: a cluster an operator quieted finishes what it holds and takes nothing new;
- `control`: operators' holds per kind (pause, resume, concurrency caps), applied at pick-up, and the
  `holds_changed` signal sent once one commits;
- `forecast`: the queue's figures per kind and when it empties (the drain forecast);
- `runner`: what a worker runs: claim, call the kind's handler, record the outcome;
- `events`: the event log, the `job_event_recorded` signal (inside the change's transaction)
  and the `job_event_committed` signal that announces it;
- `payload`: the job's JSON;
- `reaper`: new deliveries for jobs whose worker was lost;
- `rollups`, `retention`: the dashboard's rollups of finished jobs, and pruning past retention;
- `overview`: the read side the operations pages show: counts per kind and status, finishes
  (rolled up and live), queue samples, the oldest queued, held and lost jobs, what runs where;
- `fingerprints`: a failure's group, stored as the job fails;
- `errors`: the exceptions handlers raise and requests meet.
"""

from offload.jobs import accept, attempts, control, kinds, overview, payload, quiet, rollups, waiting
from offload.jobs.cancel_flags import cancel_flagged
from offload.jobs.control import holds_changed, max_concurrency
from offload.jobs.delivery import on_task_starting
from offload.jobs.errors import (
    IdempotencyKeyReused,
    JobCancelled,
    JobConflict,
    JobDeferred,
    JobFailed,
    JobLost,
    TransientJobError,
    UnknownJobKind,
)
from offload.jobs.events import (
    FINISH,
    FIRST_QUEUE,
    PROGRESS,
    REQUEUE,
    START,
    job_event_committed,
    job_event_recorded,
    record_event,
    record_in_transaction_when,
)
from offload.jobs.events import connect as listen_for_event_numbers
from offload.jobs.fingerprints import classify, fingerprint
from offload.jobs.forecast import queue_row, queue_rows
from offload.jobs.idempotency import stored_idempotency_key
from offload.jobs.identity import params_hash
from offload.jobs.kinds import STAFF, VIEWERS, Choice, JobKind, get_kind, register
from offload.jobs.lanes import (
    LaneBroker,
    LaneORMBroker,
    broker_for,
    cluster_stat,
    lane_of,
    lane_queue,
    live_clusters_per_lane,
)
from offload.jobs.liveness import cancel_requested, heartbeat
from offload.jobs.payload import job_payload
from offload.jobs.requests import cancel, retry
from offload.jobs.runner import JobRun, on_worker_spawned
from offload.jobs.schedules import last_runs as last_schedule_runs
from offload.jobs.schedules import note_start as note_schedule_start
from offload.jobs.schedules import record_run as record_schedule_run
from offload.jobs.schedules import register_schedule, sync_schedules
from offload.jobs.schedules import run_now as run_schedule
from offload.jobs.transitions import (
    claim,
    defer,
    enqueue,
    fail,
    fail_or_retry,
    mark_cancelled,
    succeed,
)

__all__ = [
    "FINISH",
    "FIRST_QUEUE",
    "PROGRESS",
    "REQUEUE",
    "STAFF",
    "START",
    "VIEWERS",
    "Choice",
    "IdempotencyKeyReused",
    "JobCancelled",
    "JobConflict",
    "JobDeferred",
    "JobFailed",
    "JobKind",
    "JobLost",
    "JobRun",
    "LaneBroker",
    "LaneORMBroker",
    "TransientJobError",
    "UnknownJobKind",
    "accept",
    "attempts",
    "broker_for",
    "cancel",
    "cancel_flagged",
    "cancel_requested",
    "claim",
    "classify",
    "cluster_stat",
    "control",
    "defer",
    "enqueue",
    "fail",
    "fail_or_retry",
    "fingerprint",
    "get_kind",
    "heartbeat",
    "holds_changed",
    "job_event_committed",
    "job_event_recorded",
    "job_payload",
    "kinds",
    "lane_of",
    "lane_queue",
    "last_schedule_runs",
    "listen_for_event_numbers",
    "live_clusters_per_lane",
    "mark_cancelled",
    "max_concurrency",
    "note_schedule_start",
    "on_task_starting",
    "on_worker_spawned",
    "overview",
    "params_hash",
    "payload",
    "queue_row",
    "queue_rows",
    "quiet",
    "record_event",
    "record_in_transaction_when",
    "record_schedule_run",
    "register",
    "register_schedule",
    "retry",
    "rollups",
    "run_schedule",
    "stored_idempotency_key",
    "succeed",
    "sync_schedules",
    "waiting",
]
