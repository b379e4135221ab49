# The consent state inside the proof (issue 9, item 4): each state row names the event it was projected from, a
# LedgerVerification row records each verification run, and on PostgreSQL a trigger refuses UPDATE and DELETE on
# the ledger unless the transaction opened the one retention path (consent.ledger.ledger_retention_allow), which
# sets `assent.ledger_retention` to 'on' for that transaction only (SET LOCAL).

import django.db.models.deletion
from django.db import migrations, models

# A state's `seq` is the seq of the event that decided it on the subject's own chain (for a merged state, the
# survivor's `merged` event); a row whose seq names no event (none is known) falls back to the triple's latest.
# Two statements, written so that SQLite (the demo) runs them as well as PostgreSQL.
BACKFILL = (
    """
UPDATE consent_consentstate SET event_id = (
    SELECT e.id FROM consent_consentevent AS e
    WHERE e.subject_id = consent_consentstate.subject_id AND e.seq = consent_consentstate.seq
)
WHERE event_id IS NULL
""",
    """
UPDATE consent_consentstate SET event_id = (
    SELECT e.id FROM consent_consentevent AS e
    WHERE e.subject_id = consent_consentstate.subject_id AND e.purpose = consent_consentstate.purpose
      AND e.channel IN (consent_consentstate.channel, '')
    ORDER BY e.occurred_at DESC, e.seq DESC LIMIT 1
)
WHERE event_id IS NULL
""",
)

LEDGER_GUARD = """
CREATE FUNCTION consent_consentevent_append_only() RETURNS trigger AS $$
BEGIN
    IF current_setting('assent.ledger_retention', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'the consent ledger is append-only: ' || TG_OP || ' refused '
        '(erasure and retention use consent.ledger.ledger_retention_allow)';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_consentevent_append_only
    BEFORE UPDATE OR DELETE ON consent_consentevent
    FOR EACH ROW EXECUTE FUNCTION consent_consentevent_append_only();
"""
DROP_LEDGER_GUARD = """
DROP TRIGGER IF EXISTS consent_consentevent_append_only ON consent_consentevent;
DROP FUNCTION IF EXISTS consent_consentevent_append_only();
"""


def backfill(apps, schema_editor):
    for statement in BACKFILL:
        schema_editor.execute(statement)


def ledger_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEDGER_GUARD)


def drop_ledger_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_LEDGER_GUARD)


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_drop_duplicate_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="consentstate",
            name="event",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="consent.consentevent"
            ),
        ),
        migrations.AddIndex(
            model_name="consentevent",
            index=models.Index(fields=["recorded_at"], name="event_by_recorded"),
        ),
        migrations.CreateModel(
            name="LedgerVerification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(null=True)),
                (
                    "kind",
                    models.CharField(choices=[("full", "Full"), ("incremental", "Incremental")], max_length=16),
                ),
                ("subjects_checked", models.PositiveIntegerField(default=0)),
                ("problem_count", models.PositiveIntegerField(default=0)),
                ("problems", models.JSONField(default=list)),
            ],
            options={
                "indexes": [models.Index(fields=["-started_at"], name="ledger_verification_latest")],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(ledger_guard, drop_ledger_guard),
    ]
