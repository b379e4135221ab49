"""Schemathesis' stateful run over the links of tests/fuzz/openapi.py: a record or a consent is written and its
subject read back (consents, history, profile); a rights request is opened, then fetched, verified, approved and
lifted. Every step answers within the schema, never a 5xx."""

from __future__ import annotations

from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.db import transaction
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks

from tests.fuzz.budget import COUNTS, STATEFUL_EXAMPLES, STATEFUL_STEPS, STATUSES, fuzz_settings
from tests.fuzz.openapi import load_schema
from tests.fuzz.realistic import realistic

CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.use_after_free,
    openapi_checks.ensure_resource_availability,
]


def test_linked_operations_answer_within_the_schema(api_keys: dict[str, str | None], wsgi_app: WSGIHandler) -> None:
    schema = load_schema()
    schema.hook("flatmap_body")(lambda context, body: realistic(body))
    base = schema.as_state_machine()
    assert base.bundles, "the links of tests/fuzz/openapi.py give the state machine its transitions"
    key = api_keys["all"]
    sent: list[str] = []

    class Machine(base):  # type: ignore[valid-type,misc]
        # Each scenario starts from the same database: hypothesis replays scenarios while it shrinks, and a replay
        # that met the rows of the one before (a 409 where there was a 202) would be another scenario.
        def setup(self) -> None:
            super().setup()
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            super().teardown()

        def before_call(self, case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"app": wsgi_app}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            COUNTS["api-stateful"] += 1
            STATUSES[response.status_code] += 1
            sent.append(f"{case.method} {case.operation.path} -> {response.status_code}")

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs={"app": wsgi_app}, recorder=self.recorder)

    Machine.run(settings=fuzz_settings(STATEFUL_EXAMPLES, steps=STATEFUL_STEPS))
    print("\n".join(sent[-40:]))
