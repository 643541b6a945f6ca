"""Job events are numbered at COMMIT, not at INSERT (PostgreSQL).

A deferred constraint trigger takes the next seq from the one EventSequence row as the
inserting transaction commits, so that row is locked only for the commit itself, never
across a request's or a worker's round trips. offload/jobs/events.py explains why this keeps
every seq below a visible one committed. SQLite keeps numbering at INSERT (one writer at a time).
"""

from django.db import migrations, models

NUMBER_EVENT = """
CREATE OR REPLACE FUNCTION offload_number_job_event() RETURNS trigger AS $$
DECLARE
    taken bigint;
BEGIN
    INSERT INTO offload_eventsequence (id, last_seq) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET last_seq = offload_eventsequence.last_seq + 1
    RETURNING last_seq INTO taken;
    UPDATE offload_jobevent SET seq = taken WHERE id = NEW.id;
    -- Tells the committing session its number (delivered with the COMMIT's answer), so it
    -- need not read it back; only that session listens on its own channel.
    PERFORM pg_notify('offload_seq_' || pg_backend_pid(), NEW.id || ' ' || taken);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER offload_jobevent_number
    AFTER INSERT ON offload_jobevent
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.seq IS NULL)
    EXECUTE FUNCTION offload_number_job_event();
"""

DROP = """
DROP TRIGGER IF EXISTS offload_jobevent_number ON offload_jobevent;
DROP FUNCTION IF EXISTS offload_number_job_event();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NUMBER_EVENT)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("offload", "0009_b_rollups_indexes_failure_groups")]

    operations = [
        migrations.AlterField(
            model_name="jobevent",
            name="seq",
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
