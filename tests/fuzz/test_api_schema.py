"""Schemathesis against the API's own OpenAPI document, in this process through Django's WSGI handler, with keys of
every scope: every operation answers without a 5xx, with a status the schema documents, the content type it
documents and a body that matches. Where the schema lied about a response, the schema was fixed, not the check."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks

from tests.fuzz.budget import COUNTS, OPERATION_EXAMPLES, STATUSES, fuzz_settings
from tests.fuzz.conftest import CALLERS
from tests.fuzz.openapi import load_schema
from tests.fuzz.realistic import realistic

SCHEMA = load_schema()
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
]


def with_realistic_body(case: Any) -> st.SearchStrategy[Any]:
    def rebuilt(body: Any) -> Any:
        case.body = body
        return case

    return realistic(case.body).map(rebuilt)


def authorised(case: Any, key: str | None) -> Any:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    case.headers = headers
    return case


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_answers_within_its_schema_for_every_caller(
    label: str, api_keys: dict[str, str | None], wsgi_app: WSGIHandler
) -> None:
    operation = OPERATIONS[label]
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    cases = st.one_of(
        positive,
        positive.flatmap(with_realistic_body),  # reaches past validation: see tests/fuzz/realistic.py
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @fuzz_settings(OPERATION_EXAMPLES)
    # Half the cases carry the all-scopes key, so that most reach the view; the other half spread over every caller.
    @given(case=cases, caller=st.one_of(st.just("all"), st.sampled_from(CALLERS)))
    def run(case: Any, caller: str) -> None:
        authorised(case, api_keys[caller])
        response = case.call(app=wsgi_app)
        COUNTS["api"] += 1
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, transport_kwargs={"app": wsgi_app})

    run()
