# PostgreSQL triggers that make the staff audit log (Art. 32) and the consent ledger append-only: UPDATE and DELETE
# are refused whatever the caller (TRUNCATE, which test databases use to reset, is a statement of its own). The
# ledger admits them only in a transaction that opened the one retention path (consent.ledger.chain.
# ledger_retention_allow sets `assent.ledger_retention` to 'on' with SET LOCAL). SQLite (the demo) has neither.

from django.db import migrations

APPEND_ONLY = """
CREATE FUNCTION consent_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'the audit log is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_auditentry_append_only
    BEFORE UPDATE OR DELETE ON consent_auditentry
    FOR EACH ROW EXECUTE FUNCTION consent_auditentry_append_only();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS consent_auditentry_append_only ON consent_auditentry;
DROP FUNCTION IF EXISTS consent_auditentry_append_only();
"""
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
        '(erasure and retention use consent.ledger.chain.ledger_retention_allow)';
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


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [
        migrations.RunPython(_on_postgresql(APPEND_ONLY), _on_postgresql(DROP_APPEND_ONLY)),
        migrations.RunPython(_on_postgresql(LEDGER_GUARD), _on_postgresql(DROP_LEDGER_GUARD)),
    ]
