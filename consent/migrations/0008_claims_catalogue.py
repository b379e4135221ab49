from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("consent", "0006_drop_duplicate_indexes")]

    operations = [
        migrations.AddField(
            model_name="datacategory",
            name="purchase",
            field=models.BooleanField(default=False),
        ),
    ]
