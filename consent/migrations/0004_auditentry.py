# The staff audit log (Art. 32). On PostgreSQL a trigger makes it append-only: UPDATE and DELETE are refused
# whatever the caller (TRUNCATE, which test databases use to reset, is a statement of its own and unaffected).

from django.db import migrations, models

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


def append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY)


def drop_append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY)


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0003_consentevent_action_split"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField()),
                ("user_id", models.BigIntegerField(null=True)),
                ("username", models.CharField(max_length=150)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("sign_in", "Sign In"),
                            ("sign_out", "Sign Out"),
                            ("add", "Add"),
                            ("change", "Change"),
                            ("delete", "Delete"),
                            ("action", "Action"),
                            ("view", "View"),
                            ("export", "Export"),
                        ],
                        max_length=16,
                    ),
                ),
                ("object_type", models.CharField(blank=True, max_length=100)),
                ("object_id", models.CharField(blank=True, max_length=64)),
                ("detail", models.CharField(blank=True, max_length=300)),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "indexes": [
                    models.Index(fields=["object_type", "object_id", "at"], name="audit_by_object"),
                    models.Index(fields=["at"], name="audit_by_time"),
                ],
            },
        ),
        migrations.RunPython(append_only, drop_append_only),
    ]
