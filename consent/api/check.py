"""The policy check endpoints, single and bulk: thin views that parse, call consent.gates.check and shape the
result. The hot path: orjson in and out, no per-item serializer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import (
    JsonOnlyNegotiation,
    SubjectReferenceField,
    bulk_checks,
    client_of,
    every_field_error,
    fast_json_body,
    fast_json_response,
    problems,
    reference_list,
    required_reference,
    required_string,
)
from config.errors import InvalidInputError
from config.schema import EXAMPLE_OTHER, EXAMPLE_PERSON, example
from consent.gates.check import CheckResult, check_target, consent_check_digests, consent_check_many, plain_digests
from consent.policy import Decision, Reason
from subjects.identity import parse_reference


def _decision_json(d: Decision) -> tuple[bool, str, str | None]:
    return d.allowed, d.reason.value, d.legal_basis.value if d.legal_basis else None


def decision_body(result: CheckResult, purpose: str, channel: str) -> dict[str, Any]:
    allowed, reason, legal_basis = _decision_json(result.decision)
    return {
        "allowed": allowed,
        "reason": reason,
        "legal_basis": legal_basis,
        "subject": str(result.subject_id) if result.subject_id else None,
        "purpose": purpose,
        "channel": channel,
    }


def decision_bodies(results: list[CheckResult], purpose: str, channel: str) -> list[dict[str, Any]]:
    """`decision_body` for a whole bulk answer: the few distinct decisions are turned into JSON values once, and the
    subject's UUID goes to orjson as it is (it writes the same canonical text as str() does, faster)."""
    shapes: dict[int, tuple[bool, str, str | None]] = {}  # by id(): consent.policy builds each decision once
    bodies = []
    for result in results:
        d = result.decision
        allowed, reason, legal_basis = shapes.get(id(d)) or shapes.setdefault(id(d), _decision_json(d))
        bodies.append(
            {
                "allowed": allowed,
                "reason": reason,
                "legal_basis": legal_basis,
                "subject": result.subject_id,
                "purpose": purpose,
                "channel": channel,
            }
        )
    return bodies


def _single_checks(body: dict[str, Any]) -> list[Callable[[], object]]:
    """A single check's fields, each parsed on its own, for a problem that names every bad one."""
    return [
        lambda: required_string(body, "purpose"),
        lambda: required_string(body, "channel"),
        lambda: required_reference(body),
    ]


class CheckOutputSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=[r.value for r in Reason])
    legal_basis = serializers.CharField(allow_null=True)
    subject = serializers.UUIDField(allow_null=True)
    purpose = serializers.CharField()
    channel = serializers.CharField()


class ConsentCheckApi(APIView):
    required_scope = "consent:check"
    content_negotiation_class = JsonOnlyNegotiation

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentCheck"

        subject = SubjectReferenceField()
        purpose = serializers.CharField(max_length=64)
        channel = serializers.CharField(max_length=64)

    @extend_schema(
        operation_id="consent_check",
        summary="Check one person",
        description=(
            "May this purpose use this channel for this person now? `allowed` and the `reason` (one of the reason "
            "codes of API.md) with the `legal_basis` it rests on. A person nobody knows is `allowed: false, reason: "
            "unknown_subject`; a channel the purpose does not list is `allowed: false, reason: "
            "channel_not_permitted`. An unknown purpose or channel is 400. Treat any answer but 200 as a deny."
        ),
        tags=["checks"],
        request=InputSerializer,
        examples=[
            example("By e-mail address", {"subject": EXAMPLE_PERSON, "purpose": "newsletter", "channel": "email"}),
            example("By customer number", {"subject": EXAMPLE_OTHER, "purpose": "order-updates", "channel": "sms"}),
        ],
        responses={200: CheckOutputSerializer, **problems(body=True)},
    )
    def post(self, request: Request) -> HttpResponse:
        # Parsed by hand, not by the serializer above (which documents it): this is the hottest path of all.
        body = fast_json_body(request)
        try:
            purpose, channel = required_string(body, "purpose"), required_string(body, "channel")
            reference = required_reference(body)
        except InvalidInputError as exc:
            raise every_field_error(exc, _single_checks(body)) from None
        info = check_target(purpose=purpose, channel=channel, client_purposes=client_of(request).purposes)
        result = consent_check_many(references=[reference], info=info, channel=channel)[0]
        return fast_json_response(decision_body(result, purpose, channel))


class ConsentCheckBulkApi(APIView):
    required_scope = "consent:check"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentCheckBulk"

        purpose = serializers.CharField(max_length=64)
        channel = serializers.CharField(max_length=64)
        subjects = serializers.ListField(child=SubjectReferenceField(), min_length=1, max_length=10_000)

    @extend_schema(
        operation_id="consent_check_bulk",
        summary="Check many people",
        description=(
            "The single check for 1 to 10,000 people on one purpose and channel: one result per reference, in input "
            "order, each shaped like a single check's answer. A bad reference is a 400 naming every bad one."
        ),
        tags=["checks"],
        request=InputSerializer,
        examples=[
            example(
                "Three people",
                {
                    "purpose": "newsletter",
                    "channel": "email",
                    "subjects": [EXAMPLE_PERSON, EXAMPLE_OTHER, {"phone": "+49 151 23456703"}],
                },
            )
        ],
        responses={
            200: inline_serializer("BulkCheckResults", {"results": CheckOutputSerializer(many=True)}),
            **problems(body=True),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        # No per-item serializer: 10,000 references are parsed in one pass.
        body = fast_json_body(request)
        try:
            purpose, channel = required_string(body, "purpose"), required_string(body, "channel")
            subjects = reference_list(body, "subjects")
            # Nearly every call names people by a plain e-mail address each: straight to their blind indexes.
            digests = plain_digests(subjects)
            references = (
                [parse_reference(item, field=f"subjects[{i}]") for i, item in enumerate(subjects)]
                if digests is None
                else None
            )
        except InvalidInputError as exc:
            raise every_field_error(exc, bulk_checks(body, "subjects")) from None
        info = check_target(purpose=purpose, channel=channel, client_purposes=client_of(request).purposes)
        if references is None:
            results = consent_check_digests(digests=digests or [], info=info, channel=channel)
        else:
            results = consent_check_many(references=references, info=info, channel=channel)
        return fast_json_response({"results": decision_bodies(results, purpose, channel)})
