from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="offload: prune job events past their retention",
        defaults={"func": "offload.events.prune_events", "schedule_type": "H", "repeats": -1},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name="offload: prune job events past their retention"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("offload", "0003_renditions_thumbnails_enrichment")]

    operations = [migrations.RunPython(forwards, backwards)]
