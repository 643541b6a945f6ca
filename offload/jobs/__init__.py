"""The job spine: its public API.

Code outside the spine (handlers, the API, the admin, search) imports from here. Inside,
the modules import each other directly:

- `kinds`: the registry of job kinds;
- `accept`: a person's request for a job, accepted in one statement;
- `transitions`: every change of a job's status (enqueue, claim, finish, retry, cancel, a lost attempt);
- `attempts`: each attempt's history row (times, host/pid, outcome, error, log tail), in both
  forms the transitions take;
- `waiting`: why a queued job waits (`waiting_reason`) and whether a running job's worker is lost;
- `queue`: the django-q2 side, writing the task of a job's next attempt to its kind's lane;
- `broker`: the lane broker, taking what people asked for before a pipeline's backlog;
- `control`: operators' holds per kind (pause, resume, concurrency caps), applied at pick-up, and the
  `holds_changed` signal sent once one commits;
- `forecast`: the queue's figures per kind and when it empties (the drain forecast);
- `runner`: what a worker runs: claim, call the kind's handler, record the outcome;
- `events`: the event log, the `job_event_recorded` signal (inside the change's transaction)
  and the `job_event_committed` signal that announces it;
- `payload`: the job's JSON;
- `reaper`: new deliveries for jobs whose worker was lost;
- `rollups`, `retention`: the dashboard's rollups of finished jobs, and pruning past retention;
- `fingerprints`: a failure's group, stored as the job fails;
- `errors`: the exceptions handlers raise and requests meet.
"""

from offload.jobs.control import holds_changed
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
    job_event_committed,
    job_event_recorded,
    record_event,
    record_in_transaction_when,
)
from offload.jobs.kinds import STAFF, VIEWERS, Choice, JobKind, get_kind, register
from offload.jobs.payload import job_payload
from offload.jobs.runner import JobRun
from offload.jobs.transitions import (
    cancel,
    cancel_flagged,
    cancel_requested,
    claim,
    defer,
    enqueue,
    fail,
    fail_or_retry,
    heartbeat,
    mark_cancelled,
    params_hash,
    retry,
    stored_idempotency_key,
    succeed,
)

__all__ = [
    "STAFF",
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
    "TransientJobError",
    "UnknownJobKind",
    "cancel",
    "cancel_flagged",
    "cancel_requested",
    "claim",
    "defer",
    "enqueue",
    "fail",
    "fail_or_retry",
    "get_kind",
    "heartbeat",
    "holds_changed",
    "job_event_committed",
    "job_event_recorded",
    "job_payload",
    "mark_cancelled",
    "params_hash",
    "record_event",
    "record_in_transaction_when",
    "register",
    "retry",
    "stored_idempotency_key",
    "succeed",
]
