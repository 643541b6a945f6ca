from django.db import migrations

# The search lane's schedules (index-write retries, reconciliation) read their interval and
# lane from the settings, so `manage.py schedules` writes them, not a migration. This one
# once did; it is kept, empty, for the migration history.


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = []
