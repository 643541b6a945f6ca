from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("offload", "EventSequence").objects.get_or_create(pk=1)
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="offload: re-queue jobs whose worker was lost",
        defaults={"func": "offload.jobs.reap_stale_jobs", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__startswith="offload:").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
