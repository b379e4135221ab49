from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("consent", "0007_state_event_ledger_guard")]

    operations = [
        migrations.AddField(
            model_name="datacategory",
            name="purchase",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="channel",
            name="names",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="datacategory",
            name="names",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="purpose",
            name="names",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="source",
            name="names",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="purpose",
            name="automated_decision_texts",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
