"""Linked-record ingestion: the one endpoint that attaches identifiers and merges subjects."""

from __future__ import annotations

import json
import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import WindowedDateTimeField, problems
from config.errors import DomainError, InvalidInputError
from consent.catalogue.snapshot import catalogue_snapshot
from subjects.identity import KINDS, normalise
from subjects.merge_proposals import merge_proposal_get
from subjects.records import RecordInput, record_ingest

MAX_RECORD_BYTES = 256 * 1024


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
        request=InputSerializer,
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
        result = record_ingest(record=_record_input(serializer.validated_data))
        body = {"record": str(result.record_id), "subject": str(result.subject_id)}
        if result.merge_proposal is not None:
            body["merge_proposal"] = str(result.merge_proposal)
            return Response(body, status=202)
        return Response(body, status=201 if result.created else 200)


def _record_input(data: dict[str, Any]) -> RecordInput:
    """A validated record of the API as the ingestion service's input, checked against the catalogue."""
    snapshot = catalogue_snapshot()
    holdings = snapshot.sources.get(data["source"])
    if holdings is None:
        snapshot = catalogue_snapshot(refresh=True)
        holdings = snapshot.sources.get(data["source"])
    if holdings is None:
        raise RecordSourceError(f"'{data['source']}' is not a source of the catalogue", field="source")
    if data["category"] not in holdings:
        raise RecordCategoryError(
            f"source '{data['source']}' does not declare category '{data['category']}' "
            f"(it declares {', '.join(sorted(holdings)) or 'none'})",
            field="category",
        )
    if not data["identifiers"]:
        raise InvalidInputError("a record needs at least one identifier", field="identifiers")
    identifiers = []
    for kind, value in data["identifiers"].items():
        if kind not in KINDS:
            raise InvalidInputError(f"'{kind}' is not an identifier kind", field=f"identifiers.{kind}")
        identifiers.append((kind, normalise(kind, value, field=f"identifiers.{kind}")))
    if len(json.dumps(data["data"])) > MAX_RECORD_BYTES:
        raise InvalidInputError(f"larger than {MAX_RECORD_BYTES // 1024} KiB", field="data")
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
    """Up to 10,000 records in one call, applied in order, each in its own transaction (API.md): an invalid item
    is reported with its errors and the rest still apply. A fault that is not the item's (the database away)
    ends the call with its problem; the items before it stay applied, and a retry is idempotent per record."""

    required_scope = "records:write"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordBatch"

        records = serializers.ListField(child=serializers.JSONField(), max_length=10_000, allow_empty=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RecordBatchResults"

        results = serializers.ListField(child=RecordBatchResultSerializer())

    @extend_schema(
        operation_id="record_ingest_batch",
        request=InputSerializer,
        responses={200: OutputSerializer, **problems(body=True)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = [_batch_item(index, item) for index, item in enumerate(serializer.validated_data["records"])]
        return Response({"results": results})


def _batch_item(index: int, item: object) -> dict[str, Any]:
    empty: dict[str, Any] = {"index": index, "record": None, "subject": None, "merge_proposal": None, "errors": None}
    item_serializer = RecordIngestApi.InputSerializer(data=item)
    if not item_serializer.is_valid():
        errors = {field: [str(m) for m in messages] for field, messages in _flat(item_serializer.errors).items()}
        return {**empty, "status": "invalid", "errors": errors}
    try:
        result = record_ingest(record=_record_input(item_serializer.validated_data))
    except DomainError as exc:
        if exc.status >= 500:
            raise  # not the item's fault: the whole call answers the problem
        return {**empty, "status": "invalid", "errors": exc.errors or {"record": [exc.detail]}}
    status = "proposed" if result.merge_proposal else ("created" if result.created else "updated")
    return {
        **empty,
        "status": status,
        "record": str(result.record_id),
        "subject": str(result.subject_id),
        "merge_proposal": str(result.merge_proposal) if result.merge_proposal else None,
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
