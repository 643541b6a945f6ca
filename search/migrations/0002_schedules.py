from django.conf import settings
from django.db import migrations

PREFIX = "search: "


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    # Run by the search lane's own scheduler (its cluster name), so they never wait behind
    # the default lane's work; the cluster's catch_up=False means no storm after downtime.
    lane = settings.SEARCH_Q_CLUSTER
    Schedule.objects.update_or_create(
        name=f"{PREFIX}retry index writes",
        defaults={
            "func": "search.tasks.drain_pending",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "cluster": lane,
        },
    )
    Schedule.objects.update_or_create(
        name=f"{PREFIX}reconcile index with database",
        defaults={
            "func": "search.tasks.reconcile",
            "schedule_type": "I",
            "minutes": settings.SEARCH_RECONCILE_MINUTES,
            "repeats": -1,
            "cluster": lane,
        },
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__startswith=PREFIX).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
