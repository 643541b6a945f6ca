"""Queue control: a per-kind pause and concurrency cap, a job's priority, and an index for the lane broker."""

from django.db import migrations, models
from django.utils import timezone

# The lane broker (offload/jobs/lanes.py) takes the next due row of a lane's queues in
# (lock, id) order on every poll; django-q2 ships no index for it.
ORMQ_INDEX = "CREATE INDEX offload_ormq_key_lock ON django_q_ormq (key, lock, id)"


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0007_library_members_job_members"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="priority",
            field=models.PositiveSmallIntegerField(choices=[(0, "pipeline"), (1, "person")], default=0),
        ),
        migrations.CreateModel(
            name="QueueControl",
            fields=[
                ("kind", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("paused", models.BooleanField(default=False)),
                ("concurrency", models.PositiveIntegerField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(default=timezone.now)),
            ],
            options={"ordering": ["kind"]},
        ),
        migrations.RunSQL(ORMQ_INDEX, "DROP INDEX offload_ormq_key_lock"),
    ]
