import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0013_job_has_members"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobAttempt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("host", models.CharField(blank=True, default="", max_length=255)),
                ("pid", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                            ("retrying", "Retrying"),
                            ("deferred", "Deferred"),
                            ("lost", "Lost"),
                        ],
                        default="running",
                        max_length=16,
                    ),
                ),
                ("error", models.TextField(blank=True, default="")),
                ("log_tail", models.TextField(blank=True, default="")),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempt_history",
                        to="offload.job",
                    ),
                ),
            ],
            options={"ordering": ["job", "number"]},
        ),
        migrations.AddConstraint(
            model_name="jobattempt",
            constraint=models.UniqueConstraint(fields=("job", "number"), name="job_attempt_once"),
        ),
    ]
