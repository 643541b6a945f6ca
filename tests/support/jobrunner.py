"""Run queued jobs inline, the way a django-q2 worker would, without a cluster."""

import pydoc

from django_q.signals import pre_execute
from django_q.signing import SignedPackage

from offload.jobs.lanes import broker_for, job_lanes, lane_queue
from offload.models import Job


def run_next(lane: str | None = None) -> bool:
    """Deliver the next due task of a lane (of any job lane, in lane order, when none is named)."""
    for name in [lane] if lane else job_lanes():
        broker = broker_for(lane_queue(name))
        if broker.queue_size() == 0:
            continue
        batch = broker.dequeue()
        if not batch:
            continue
        for ack_id, payload in batch:
            deliver(broker, ack_id, payload)
        return True
    return False


def deliver(broker, ack_id: int, payload: str):
    """One task as django-q2 runs it: the worker's pre_execute and call, then the monitor's acknowledge.

    The monitor acknowledges only a task that still carries its ack_id once the worker is done
    (django_q/monitor.py); a job's finish takes it (offload/jobs/delivery.py).
    """
    task = SignedPackage.loads(payload)
    task["ack_id"] = ack_id
    func = pydoc.locate(task["func"])
    pre_execute.send(sender="django_q", func=func, task=task)
    result = func(*task["args"], **task["kwargs"])
    if task.pop("ack_id", None):
        broker.acknowledge(ack_id)
    return result


def drain(max_tasks: int = 1000) -> int:
    """Deliver every task in the queue (including ones queued meanwhile); answer how many ran."""
    ran = 0
    while ran < max_tasks:
        if not run_next():
            return ran
        ran += 1
    raise AssertionError(f"the queue did not drain within {max_tasks} tasks")


def statuses(kind: str | None = None) -> list[str]:
    qs = Job.objects.order_by("id")
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.values_list("status", flat=True))
