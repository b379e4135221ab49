
import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subjects', '0006_merge_proposal'),
    ]

    operations = [
        migrations.CreateModel(
            name='IdentifierChange',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(max_length=32)),
                ('blind_index', models.BinaryField(null=True)),
                ('value_enc', models.BinaryField(null=True)),
                ('secret_hash', models.CharField(blank=True, max_length=64)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('confirmed', 'Confirmed'), ('refused', 'Refused'), ('failed', 'Failed'), ('superseded', 'Superseded')], default='pending', max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('requested_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField()),
                ('settled_at', models.DateTimeField(blank=True, null=True)),
                ('subject', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='subjects.subject')),
            ],
            options={
                'indexes': [models.Index(fields=['subject', 'requested_at'], name='identifier_change_by_subject')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('subject', 'kind'), name='identifier_change_pending_once')],
            },
        ),
    ]
