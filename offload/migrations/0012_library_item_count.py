from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_items(apps, schema_editor) -> None:
    Library = apps.get_model("offload", "Library")
    MediaItem = apps.get_model("offload", "MediaItem")
    counts = MediaItem.objects.filter(library=OuterRef("pk")).order_by().values("library").annotate(n=Count("pk"))
    Library.objects.update(item_count=Coalesce(Subquery(counts.values("n")), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0011_event_seq_at_commit"),
    ]

    operations = [
        migrations.AddField(
            model_name="library",
            name="item_count",
            field=models.IntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_items, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("failure_group", ""), ("status", "failed")),
                fields=["id"],
                name="job_failed_unclassified",
            ),
        ),
    ]
