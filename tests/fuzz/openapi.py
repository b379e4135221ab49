"""The API's own OpenAPI document (what /api/schema/ serves), loaded into schemathesis with the links that make its
stateful run meaningful: a record's or a consent's subject is then read back, a rights request then fetched and
acted on."""

from __future__ import annotations

import copy
import json
from typing import Any

import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from schemathesis.specs.openapi.schemas import OpenApiSchema

SUBJECT_READS = ("subject_consents", "subject_consent_history", "subject_profile_read")
REQUEST_ACTIONS = ("rights_request_get", "rights_request_verify", "rights_request_approve", "rights_request_lift")


def served_document() -> dict[str, Any]:
    """The document exactly as the schema view renders it (JSON), without a request."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded: dict[str, Any] = json.loads(OpenApiJsonRenderer().render(document))
    return loaded


def _link(target: str, parameter: str, pointer: str) -> dict[str, Any]:
    return {"operationId": target, "parameters": {parameter: f"$response.body#/{pointer}"}}


def with_links(document: dict[str, Any]) -> dict[str, Any]:
    """drf-spectacular writes no OpenAPI links; these say which answer feeds which path parameter."""
    linked = copy.deepcopy(document)
    by_id = {op["operationId"]: op for item in linked["paths"].values() for op in item.values() if isinstance(op, dict)}
    sources = {
        ("record_ingest", "201"): ("subject_id", "subject", SUBJECT_READS),
        ("record_ingest", "200"): ("subject_id", "subject", SUBJECT_READS),
        ("consent_record", "201"): ("subject_id", "subject", SUBJECT_READS),
        ("rights_request_open", "202"): ("request_id", "id", REQUEST_ACTIONS),
    }
    for (source, status), (parameter, pointer, targets) in sources.items():
        response = by_id[source]["responses"].setdefault(status, {"description": ""})
        links = response.setdefault("links", {})
        for target in targets:
            if target in by_id:
                links[target] = _link(target, parameter, pointer)
    return linked


def load_schema() -> OpenApiSchema:
    # A send job's body is text, one subject reference per line: generated strings go on the wire as they are.
    schemathesis.serializer.alias("application/x-ndjson", "text/plain")
    return schemathesis.openapi.from_dict(with_links(served_document()))
