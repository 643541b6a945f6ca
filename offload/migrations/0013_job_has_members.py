from django.db import migrations, models


def mark_joined_jobs(apps, schema_editor) -> None:
    Job = apps.get_model("offload", "Job")
    JobMember = apps.get_model("offload", "JobMember")
    Job.objects.filter(pk__in=JobMember.objects.values("job_id")).update(has_members=True)


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0012_library_item_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="has_members",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_joined_jobs, migrations.RunPython.noop),
    ]
