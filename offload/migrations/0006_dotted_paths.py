"""The modules moved into offload/jobs/: tasks already queued and schedules keep running.

django-q2 stores a task's function as a dotted path, in each queue row (a signed pickle)
and in each schedule. Rows written before the move name the old modules; this rewrites
them. With the Redis broker (OFFLOAD_Q_BROKER=redis), tasks wait in Redis, out of reach
of a migration: let the workers drain the queue before upgrading (docs/operations.md, Upgrading).
"""

from django.db import migrations

MOVED = {
    "offload.runner.execute": "offload.jobs.runner.execute",
    "offload.jobs.reap_stale_jobs": "offload.jobs.reaper.reap_stale_jobs",
    "offload.events.prune_events": "offload.jobs.events.prune_events",
}


def rewrite(apps, schema_editor, moves=MOVED):
    from django_q.signing import BadSignature, SignedPackage

    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in moves.items():
        Schedule.objects.filter(func=old).update(func=new)
    OrmQ = apps.get_model("django_q", "OrmQ")
    for row in OrmQ.objects.all().iterator():
        try:
            task = SignedPackage.loads(row.payload)
        except BadSignature:
            continue  # not ours to read (another SECRET_KEY); the worker will refuse it as before
        if isinstance(task, dict) and task.get("func") in moves:
            task["func"] = moves[task["func"]]
            OrmQ.objects.filter(pk=row.pk).update(payload=SignedPackage.dumps(task))


def rewrite_back(apps, schema_editor):
    rewrite(apps, schema_editor, moves={new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [("offload", "0005_job_queued_at"), ("django_q", "0018_task_success_index")]

    operations = [migrations.RunPython(rewrite, rewrite_back)]
