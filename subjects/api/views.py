"""Linked-record ingestion: the one endpoint that attaches identifiers and merges subjects."""

from __future__ import annotations

import functools
import gc
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    WindowedDateTimeField,
    client_of,
    every_field_error,
    fast_json_body,
    fast_json_response,
    problems,
)
from config.errors import DomainError, InvalidInputError
from config.input import MalformedInputError, date_in_window
from config.schema import EXAMPLE_EMAIL, example
from consent.catalogue.snapshot import CatalogueSnapshot, catalogue_snapshot
from subjects.identity import KINDS, normalise
from subjects.merge_proposals import merge_proposal_get
from subjects.records import RecordIngested, RecordInput, record_ingest
from subjects.records_batch import records_ingest_batch
from subjects.source_writers import source_writers_note

MAX_RECORD_BYTES = 256 * 1024
EXAMPLE_RECORD = {
    "source": "pos",
    "external_id": "R-2026-000123",
    "category": "purchases",
    "identifiers": {"email": EXAMPLE_EMAIL, "customer_number": "C-100001"},
    "occurred_at": "2026-03-14T10:30:00Z",
    "data": {"store": "Berlin Mitte", "total": "42.90", "items": 3},
}


class RecordSourceError(InvalidInputError):
    code = "source_unknown"
    title = "Unknown source"


class RecordCategoryError(InvalidInputError):
    code = "category_not_declared"
    title = "The source does not declare this category"


class RecordIngestApi(APIView):
    required_scope = "records:write"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordIngest"

        source = serializers.CharField(max_length=64)  # type: ignore[assignment]
        external_id = serializers.CharField(max_length=200)
        category = serializers.CharField(max_length=64)
        identifiers = serializers.DictField(child=serializers.JSONField())
        occurred_at = WindowedDateTimeField()
        data = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordIngested"

        record = serializers.UUIDField()
        subject = serializers.UUIDField()
        merge_proposal = serializers.UUIDField(required=False, help_text="only with 202: the merge waits for the DPO")

    @extend_schema(
        operation_id="record_ingest",
        summary="Ingest a linked record",
        description=(
            "A record of a person from a catalogue source (a till receipt, an order, a CRM contact): stored under "
            "(`source`, `external_id`), created (201) or updated (200). Its `identifiers` are attached to the person "
            "they resolve to, or to a new one; identifiers that name two people merge them, unless the survivor "
            "would hold two values of a `one_per_person` kind: then the record waits on the first person and a "
            "merge proposal goes to the DPO (202). `category` must be one the source declares; `occurred_at` "
            "between 1900 and tomorrow."
        ),
        tags=["records"],
        request=InputSerializer,
        examples=[
            example("A till receipt", EXAMPLE_RECORD),
            example(
                "A contact from the web shop's newsletter form",
                {
                    "source": "pos",
                    "external_id": "contact-C-100002",
                    "category": "contact",
                    "identifiers": {"email": "jonas.weber@example.org", "customer_number": "C-100002"},
                    "occurred_at": "2026-02-01T09:00:00Z",
                    "data": {"first_name": "Jonas", "city": "Hamburg"},
                },
            ),
        ],
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            202: OutputSerializer,
            **problems(body=True),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = _record_input(serializer.validated_data)
        # Art. 19: who holds what, noted before the record's transaction, never after it: a statement after the
        # commit that met a dead connection answered 503 for a record that was written (a loop of the database
        # fault test found it), and a client that did not retry was never told of that person's erasure.
        source_writers_note(client_id=client_of(request).id, sources=[record.source])
        result = record_ingest(record=record)
        body = {"record": str(result.record_id), "subject": str(result.subject_id)}
        if result.merge_proposal is not None:
            body["merge_proposal"] = str(result.merge_proposal)
            return Response(body, status=202)
        return Response(body, status=201 if result.created else 200)


def _record_input(data: dict[str, Any], snapshot: CatalogueSnapshot | None = None) -> RecordInput:
    """A validated record of the API as the ingestion service's input, checked against the catalogue (a batch
    passes the snapshot it refreshed once)."""
    if snapshot is None:
        snapshot = catalogue_snapshot()
        if data["source"] not in snapshot.sources:
            snapshot = catalogue_snapshot(refresh=True)
    try:
        _declared(data, snapshot)
        identifiers = _identifiers(data)
        _within_size(data)
    except InvalidInputError as exc:
        checks: list[Callable[[], object]] = [
            functools.partial(_declared, data, snapshot),
            functools.partial(_identifiers, data, every=True),
            functools.partial(_within_size, data),
        ]
        raise every_field_error(exc, checks) from None
    return RecordInput(
        source=data["source"],
        external_id=data["external_id"],
        category=data["category"],
        identifiers=tuple(identifiers),
        occurred_at=data["occurred_at"],
        data=data["data"],
        merge_kinds=snapshot.merge_identifiers,
        one_per_person=snapshot.one_per_person,
        merge_order=snapshot.merge_order,
        profile=snapshot.categories.get(data["category"], False),
        # UWG §7(3): a record of a category flagged `purchase` makes its e-mail and phone addresses of an
        # existing customer.
        purchase=data["category"] in snapshot.purchase_categories,
    )


def _declared(data: dict[str, Any], snapshot: CatalogueSnapshot) -> None:
    holdings = snapshot.sources.get(data["source"])
    if holdings is None:
        raise RecordSourceError(f"'{data['source']}' is not a source of the catalogue", field="source")
    if data["category"] not in holdings:
        raise RecordCategoryError(
            f"source '{data['source']}' does not declare category '{data['category']}' "
            f"(it declares {', '.join(sorted(holdings)) or 'none'})",
            field="category",
        )


def _identifiers(data: dict[str, Any], *, every: bool = False) -> list[tuple[str, str]]:
    """The record's identifiers, normalised; the first bad one raises, or with `every` all of them at once."""
    if not data["identifiers"]:
        raise InvalidInputError("a record needs at least one identifier", field="identifiers")
    identifiers = []
    bad: dict[str, list[str]] = {}
    first: InvalidInputError | None = None
    for kind, value in data["identifiers"].items():
        try:
            if kind not in KINDS:
                raise InvalidInputError(f"'{kind}' is not an identifier kind", field=f"identifiers.{kind}")
            identifiers.append((kind, normalise(kind, value, field=f"identifiers.{kind}")))
        except InvalidInputError as exc:
            if not every:
                raise
            first = first or exc
            bad |= exc.errors or {}
    if first is not None:
        raise first.naming_every_field(bad) if len(bad) > 1 else first
    return identifiers


def _within_size(data: dict[str, Any]) -> None:
    # Measured as UTF-8 bytes of compact JSON (orjson: a few microseconds, where json.dumps took as long as the rest).
    if len(orjson.dumps(data["data"])) > MAX_RECORD_BYTES:
        raise InvalidInputError(f"larger than {MAX_RECORD_BYTES // 1024} KiB", field="data")


class RecordBatchResultSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RecordBatchResult"

    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "proposed", "invalid"])
    record = serializers.UUIDField(allow_null=True)
    subject = serializers.UUIDField(allow_null=True)
    merge_proposal = serializers.UUIDField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), allow_null=True)  # type: ignore[assignment]


class RecordBatchApi(APIView):
    """Up to 10,000 records in one call, applied in order (API.md), set-based (subjects.records_batch): an invalid
    item is reported with its errors and the rest still apply. A fault that is not the item's (the database away)
    ends the call with its problem; the chunks before it stay applied, and a retry is idempotent per record."""

    required_scope = "records:write"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordBatch"

        # Documents the body (parsed by hand below): each item shaped as a single record of /records.
        records = serializers.ListField(child=RecordIngestApi.InputSerializer(), max_length=10_000, allow_empty=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordBatchResults"

        results = serializers.ListField(child=RecordBatchResultSerializer())

    @extend_schema(
        operation_id="record_ingest_batch",
        summary="Ingest up to 10,000 records",
        description=(
            "Records as for `/records`, applied in order. Each gets a result: `created`, `updated`, `proposed` (a "
            "merge waits for the DPO) or `invalid` with its `errors`; an invalid record does not stop the others."
        ),
        tags=["records"],
        request=InputSerializer,
        examples=[
            example(
                "Two records, one of them invalid",
                {"records": [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "external_id": "R-2026-000124", "category": "x"}]},
                description="The second one answers `invalid` (its source declares no category `x`).",
            )
        ],
        responses={200: OutputSerializer, **problems(body=True)},
    )
    def post(self, request: Request) -> HttpResponse:
        with _cyclic_gc_paused():
            return self._post(request)

    def _post(self, request: Request) -> HttpResponse:
        # No serializer per item (DRF's costs more than ingesting the record): plain items are checked in one pass
        # below, anything unusual goes through RecordIngestApi's serializer for the same coercions and messages.
        records = fast_json_body(request).get("records")
        if not isinstance(records, list):
            raise InvalidInputError("must be a list of records", field="records")
        if not 1 <= len(records) <= settings.ASSENT_BULK_LIMIT:
            raise InvalidInputError(f"must hold 1 to {settings.ASSENT_BULK_LIMIT:,} records", field="records")
        snapshot = catalogue_snapshot()
        if any(isinstance(r, dict) and r.get("source") not in snapshot.sources for r in records):
            snapshot = catalogue_snapshot(refresh=True)  # once per call, not per item
        parsed = [_batch_input(item, snapshot) for item in records]
        valid = [p for p in parsed if isinstance(p, RecordInput)]
        source_writers_note(client_id=client_of(request).id, sources={r.source for r in valid})  # before: see above
        outcomes = iter(records_ingest_batch(records=valid))
        results = []
        for index, item in enumerate(parsed):
            outcome: RecordInput | dict[str, list[str]] | RecordIngested | DomainError = item
            if isinstance(item, RecordInput):
                outcome = next(outcomes)
            results.append(_batch_result(index, outcome))
        return fast_json_response({"results": results})


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A call of 10,000 records holds about a million objects until it answers, none of them in a reference cycle:
    the cyclic collector's full passes re-scanned them all for nothing, a quarter of the call's CPU (45 of 170 us
    per record). Reference counting still frees everything; cycles made meanwhile wait for the next pass."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# A moment as nearly every client writes it (ASCII digits only); any other form goes through DRF's field.
_PLAIN_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _plain_item(item: object) -> dict[str, Any] | None:
    """The validated data of an item RecordIngestApi.InputSerializer would accept unchanged, or None for any
    other (which the serializer then handles, with its coercions and messages)."""
    if type(item) is not dict:
        return None
    source, external_id, category = item.get("source"), item.get("external_id"), item.get("category")
    identifiers, moment, data = item.get("identifiers"), item.get("occurred_at"), item.get("data", {})
    for text, limit in ((source, 64), (external_id, 200), (category, 64)):
        if type(text) is not str or not 0 < len(text) <= limit or text != text.strip():
            return None
    if type(identifiers) is not dict or type(data) is not dict:
        return None
    if type(moment) is not str or not _PLAIN_MOMENT.fullmatch(moment):
        return None
    try:
        occurred_at = date_in_window(datetime.fromisoformat(moment))
    except (ValueError, MalformedInputError):
        return None
    return {
        "source": source,
        "external_id": external_id,
        "category": category,
        "identifiers": identifiers,
        "occurred_at": occurred_at,
        "data": data,
    }


def _batch_input(item: object, snapshot: CatalogueSnapshot) -> RecordInput | dict[str, list[str]]:
    """An item as the service's input, or its errors per field."""
    data = _plain_item(item)
    if data is None:
        serializer = RecordIngestApi.InputSerializer(data=item)
        if not serializer.is_valid():
            return {field: [str(m) for m in messages] for field, messages in _flat(serializer.errors).items()}
        data = serializer.validated_data
    try:
        return _record_input(data, snapshot)
    except DomainError as exc:
        return exc.errors or {"record": [exc.detail]}


def _batch_result(
    index: int, outcome: RecordInput | dict[str, list[str]] | RecordIngested | DomainError
) -> dict[str, Any]:
    if isinstance(outcome, RecordIngested):
        proposal = outcome.merge_proposal
        return {
            "index": index,
            "status": "proposed" if proposal else ("created" if outcome.created else "updated"),
            "record": outcome.record_id,
            "subject": outcome.subject_id,
            "merge_proposal": proposal,
            "errors": None,
        }
    if isinstance(outcome, DomainError):
        errors = outcome.errors or {"record": [outcome.detail]}
    else:
        assert isinstance(outcome, dict)
        errors = outcome
    return {
        "index": index,
        "status": "invalid",
        "record": None,
        "subject": None,
        "merge_proposal": None,
        "errors": errors,
    }


def _flat(errors: Any, prefix: str = "") -> dict[str, list[Any]]:
    """DRF's nested serializer errors as `field.sub` -> messages, as the problem bodies name fields."""
    if isinstance(errors, dict):
        flat: dict[str, list[Any]] = {}
        for key, value in errors.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix or "record": list(errors) if isinstance(errors, list) else [errors]}


class MergeProposalDetailApi(APIView):
    """A merge that waits for the DPO (API.md): ids only, never an identifier's value."""

    required_scope = "records:write"

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MergeProposal"

        id = serializers.UUIDField()
        status = serializers.ChoiceField(choices=["open", "approved", "rejected"])
        subjects = serializers.ListField(child=serializers.UUIDField())
        survivor = serializers.UUIDField(allow_null=True)

    @extend_schema(
        operation_id="merge_proposal_get",
        summary="A merge proposal",
        description=(
            "A merge a record proposed (202 from `/records`) and the DPO approves or rejects in the admin: its "
            "status, the two people and the survivor once approved. Ids only, never an identifier."
        ),
        tags=["records"],
        responses={200: OutputSerializer, **problems({404: "Problem details: unknown merge proposal"})},
    )
    def get(self, request: Request, proposal_id: uuid.UUID) -> Response:
        proposal = merge_proposal_get(proposal_id=proposal_id)
        body = {
            "id": str(proposal.pk),
            "status": proposal.status,
            "subjects": [str(proposal.subject_a_id), str(proposal.subject_b_id)],
            "survivor": str(proposal.survivor_id) if proposal.survivor_id else None,
        }
        return Response(body)
