"""The API docs a developer reads in Swagger UI: every operation says what it does, is grouped by resource and, when
it takes a body, shows an example that works when tried; the OpenAPI document reads in a browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.urls import resolve

from config.schema import EXAMPLE_EMAIL
from tests.api import Api
from tests.factories import customer
from tests.fuzz.openapi import served_document

SCHEMA = "/api/schema/"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The connector's callback is signed with a connected system's secret (Standard Webhooks), not called with a key:
# its example documents the body, and tests/rights cover the signed call.
SIGNED_ONLY = {"rights_request_part_result"}
# A production webhook URL must resolve to a public address, which the test machine cannot look up: the example
# beside it (a loopback receiver, allowed here as in local development) is posted instead.
NEEDS_PUBLIC_DNS = {("webhook_create", "ConsentChangesToACRM")}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


DOCUMENT = served_document()
WITH_BODY = [
    (path, method, operation)
    for path, method, operation in _operations(DOCUMENT)
    if "requestBody" in operation and operation["operationId"] not in SIGNED_ONLY
]


def test_every_operation_has_a_summary_a_description_and_a_resource_tag(db: None) -> None:
    response = Client().get(SCHEMA, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    document = response.json()
    resources = {tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]}
    operations = _operations(document)
    assert len(operations) >= 20
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary", "").strip(), f"{where} has no summary"
        own_words = operation.get("description", "").split("**Scope:**")[0]
        assert len(own_words.strip()) >= 20, f"{where} has no description of its own"
        assert operation.get("tags"), f"{where} has no tag"
        assert set(operation["tags"]) <= resources, f"{where}: {operation['tags']} is not a resource tag"


def test_every_operation_with_a_key_names_its_scope(db: None) -> None:
    for path, method, operation in _operations(DOCUMENT):
        scope = getattr(resolve(_concrete(path)).func.view_class, "required_scope", None)
        if scope is not None:
            assert f"**Scope:** `{scope}`" in operation["description"], f"{method.upper()} {path}"


def test_every_operation_with_a_body_has_an_example_for_each_media_type() -> None:
    bodies = [(p, m, op) for p, m, op in _operations(DOCUMENT) if "requestBody" in op]

    assert len(bodies) >= 9
    for path, method, operation in bodies:
        for media_type, content in operation["requestBody"]["content"].items():
            assert content.get("examples"), f"{method.upper()} {path} ({media_type}) has no example"


@pytest.mark.parametrize(
    ("path", "method", "operation"), WITH_BODY, ids=[operation["operationId"] for _, _, operation in WITH_BODY]
)
def test_each_request_example_is_taken_as_it_stands(
    path: str,
    method: str,
    operation: dict[str, Any],
    catalogue: dict[str, Any],
    make_client: Callable[..., str],
) -> None:
    # Given the demo customer the examples name, and a key with just the operation's scope
    customer(EXAMPLE_EMAIL)
    scope = resolve(path).func.view_class.required_scope
    api = Api(make_client(scope))
    query = _query_examples(operation)

    # When each example is posted as Swagger UI's "Try it out" would send it, in the order shown
    for media_type, content in operation["requestBody"]["content"].items():
        for name, example in content["examples"].items():
            if (operation["operationId"], name) in NEEDS_PUBLIC_DNS:
                continue
            value = example["value"]
            raw = value if isinstance(value, str) else json.dumps(value)
            response = api.post_raw(f"{path}?{query}" if query else path, raw, content_type=media_type)

            # Then it is taken: no 400 for its shape, no other refusal
            assert 200 <= response.status_code < 300, (name, response.status_code, response.content)


def test_the_schema_reads_as_text_in_a_browser(db: None) -> None:
    response = Client().get(SCHEMA, HTTP_ACCEPT=BROWSER)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert not response.get("Content-Disposition", "").startswith("attachment")
    assert response.content.startswith(b"openapi: 3.")


def test_the_schema_reads_as_json_in_a_browser_when_asked(db: None) -> None:
    response = Client().get(SCHEMA + "?format=json", HTTP_ACCEPT=BROWSER)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["paths"]


def test_tools_still_get_the_openapi_media_types(db: None) -> None:
    assert Client().get(SCHEMA)["Content-Type"].startswith("application/vnd.oai.openapi")
    json_answer = Client().get(SCHEMA, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert json_answer["Content-Type"].startswith("application/vnd.oai.openapi+json")


def test_the_docs_page_links_the_schema(db: None) -> None:
    description = DOCUMENT["info"]["description"]

    assert "(/api/schema/)" in description
    assert "(/api/schema/?format=json)" in description


def _query_examples(operation: dict[str, Any]) -> str:
    """The query an operation's required parameters take, from their examples."""
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter.get("required"):
            examples = parameter.get("examples")
            assert examples, f"{operation['operationId']}: query parameter {parameter['name']} has no example"
            query[parameter["name"]] = next(iter(examples.values()))["value"]
    return urlencode(query)


def _concrete(path: str) -> str:
    """A path of the document with its parameters filled in, for resolve()."""
    return path.replace("{part}", "erasure").format_map(_AnyUuid())


class _AnyUuid(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "00000000-0000-0000-0000-000000000000"
