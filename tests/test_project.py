"""Project-wide guards: the OpenAPI schema is valid and warning-free, and the models match the migrations."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


def test_the_openapi_schema_validates_without_a_warning() -> None:
    out = io.StringIO()
    # --fail-on-warn turns any drf-spectacular warning (a name collision, an unresolvable field) into an error
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/consents/check-bulk" in out.getvalue()


@pytest.mark.django_db
def test_every_model_change_has_its_migration() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())
