"""Consent endpoints: recording a consent event, and a subject's consent states and history. Thin: parse, call one
service or selector, shape the output."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    EvidenceField,
    JsonOnlyNegotiation,
    SubjectReferenceField,
    WindowedDateTimeField,
    client_of,
    fast_json_response,
    flatten_errors,
    problems,
    required_reference,
)
from config.errors import InvalidInputError
from config.schema import EXAMPLE_PERSON, example
from consent.catalogue.snapshot import catalogue_snapshot
from consent.dpv_record import MEDIA_TYPE as DPV_MEDIA_TYPE
from consent.dpv_record import consent_record_jsonld
from consent.errors import EvidenceRequiredError
from consent.gpc import gpc_honour, gpc_signal
from consent.ledger.recording import ConsentCommand
from consent.policy import Action, ConsentStatus, Decision, Reason, decide
from consent.selectors import consent_history_list, consent_states_list, subject_states_for_policy
from consent.services import consent_record, consent_record_idempotent, request_digest
from consent.tcf_consents import consent_record_tc_string
from subjects.identity import parse_reference
from subjects.selectors import subject_get_survivor


class ConsentCreateApi(APIView):
    required_scope = "consent:write"
    content_negotiation_class = JsonOnlyNegotiation

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentWrite"

        subject = SubjectReferenceField()
        tc_string = serializers.CharField(
            required=False,
            help_text="instead of purpose, channel, action and notice_version: a CMP's IAB TCF v2.2 TC string; "
            "one event per catalogue purpose naming tcf_purposes, on the web channel (201 with `events`)",
        )
        purpose = serializers.CharField(max_length=64)
        channel = serializers.CharField(max_length=64, required=False, allow_null=True)
        action = serializers.CharField(max_length=16)
        notice_version = serializers.CharField(max_length=64, required=False, allow_null=True)
        source = serializers.CharField(max_length=64)  # type: ignore[assignment]
        occurred_at = WindowedDateTimeField(required=False, allow_null=True)
        actor = serializers.CharField(max_length=32, required=False, default="subject")
        evidence = EvidenceField(required=False, default=dict)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentWritten"

        event = serializers.UUIDField()
        subject = serializers.UUIDField()
        state = serializers.ChoiceField(choices=[status.value for status in ConsentStatus])
        gpc = inline_serializer(
            "GpcHonoured",
            {"honoured": serializers.BooleanField(), "objected": serializers.ListField(child=serializers.CharField())},
            required=False,
            help_text="with `Sec-GPC: 1` only: the purposes marked `gpc` the person now objects to (source `gpc`)",
        )

    @extend_schema(
        operation_id="consent_record",
        summary="Record a consent event",
        description=(
            "Append a grant, withdrawal, objection or confirmation to the person's hash-chained ledger and answer "
            "the resulting `state`. `action`: `grant` (needs the purpose's current `notice_version`), `withdraw`, "
            "`object` (covers every channel; `channel` may be left out) or `confirm` (a double opt-in the client's "
            "own form ran: `evidence` holds at least `confirmed_at` and `method`). A grant on a double opt-in "
            "channel is `pending_confirmation` until the person confirms the mailed link; it needs an e-mail that "
            "is the person's (400 `email_required`, 409 `email_not_linked`). `source` names the touchpoint "
            "(`webshop`, `pos` ...; `portal`, `double-opt-in`, `unsubscribe-link`, `gpc` and `admin` are reserved). "
            "A write creates the person when nothing resolves. With `Idempotency-Key` a replay answers the first "
            "status and body; the same key with another body is 409."
        ),
        tags=["consents"],
        request=InputSerializer,
        examples=[
            example(
                "Grant by SMS",
                {
                    "subject": EXAMPLE_PERSON,
                    "purpose": "newsletter",
                    "channel": "sms",
                    "action": "grant",
                    "notice_version": "2026-01",
                    "source": "webshop",
                    "evidence": {"form": "checkout", "checkbox": "newsletter-sms"},
                },
            ),
            example(
                "Grant by e-mail (double opt-in)",
                {
                    "subject": EXAMPLE_PERSON,
                    "purpose": "newsletter",
                    "channel": "email",
                    "action": "grant",
                    "notice_version": "2026-01",
                    "source": "webshop",
                },
                description="Answers `pending_confirmation`; the person gets a confirmation link.",
            ),
            example(
                "Withdraw",
                {
                    "subject": EXAMPLE_PERSON,
                    "purpose": "newsletter",
                    "channel": "sms",
                    "action": "withdraw",
                    "source": "callcenter",
                    "actor": "agent",
                },
            ),
            example(
                "Object to direct marketing on every channel",
                {"subject": EXAMPLE_PERSON, "purpose": "newsletter", "action": "object", "source": "pos"},
            ),
        ],
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "Sec-GPC",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="`1`: the person's browser sent Global Privacy Control with this act; Assent also records "
                "an objection (source `gpc`) to every purpose the catalogue marks `gpc`",
            ),
        ],
        responses={
            201: OutputSerializer,
            **problems(
                {
                    404: "Problem details: the reference's `id` names no subject",
                    409: "Problem details: ambiguous subject, key reuse, nothing to confirm, or `email_not_linked` "
                    "(a double opt-in or a client's confirm for an address that is not the subject's)",
                },
                body=True,
            ),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        if isinstance(request.data, dict) and "tc_string" in request.data:
            return _tc_string_write(request)
        data = plain_input(request.data)
        if data is None:
            serializer = self.InputSerializer(data=request.data)
            confirm = isinstance(request.data, dict) and request.data.get("action") == "confirm"
            if not serializer.is_valid() and confirm and "evidence" in serializer.errors:
                # A client's own confirm stands on its evidence: API.md names the code for evidence that does not
                # hold. The problem still names every other bad field too.
                refused = EvidenceRequiredError(f"evidence: {serializer.errors['evidence']}", field="evidence")
                if len(serializer.errors) > 1:
                    refused.naming_every_field(flatten_errors(serializer.errors))
                raise refused
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        client = client_of(request)
        command = ConsentCommand(
            reference=data["subject"],
            purpose=data["purpose"],
            channel=data.get("channel"),
            action=data["action"],
            notice_version=data.get("notice_version"),
            source=data["source"],
            occurred_at=data.get("occurred_at"),
            actor=data["actor"],
            evidence=data["evidence"],
            client_id=client.id,
            client_purposes=client.purposes,
        )
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if not key.strip() or len(key) > 200:
                raise InvalidInputError("must be 1 to 200 characters", field="Idempotency-Key")
            status, body = consent_record_idempotent(
                command=command, client_id=client.id, key=key, request_digest=request_digest(request.data)
            )
        else:
            status, body = 201, consent_record(command=command).as_body()
        if status == 201 and gpc_signal(request.headers):
            # The person's browser sent Global Privacy Control with the act this write records (consent.gpc).
            # A grant in this very write is the person's own choice for its purpose: the signal does not overrule it.
            spare = frozenset({command.purpose}) if command.action in ("grant", "confirm") else frozenset()
            objected = gpc_honour(subject_id=uuid.UUID(body["subject"]), client_id=client.id, via="api", spare=spare)
            body = {**body, "gpc": {"honoured": True, "objected": objected}}
        return fast_json_response(body, status=status)


def _tc_string_write(request: Request) -> HttpResponse:
    """A CMP's IAB TCF v2.2 decision instead of one purpose and channel (consent.tcf_consents): 201 with one event per
    catalogue purpose that names TCF purposes."""
    body: dict[str, Any] = request.data
    misplaced = sorted(set(body) & {"purpose", "channel", "action", "notice_version", "occurred_at"})
    if misplaced:
        raise InvalidInputError(
            f"give tc_string instead of {', '.join(misplaced)}: the string decides purposes and actions",
            field=misplaced[0],
        )
    unknown = sorted(set(body) - {"subject", "tc_string", "source", "actor"})
    if unknown:
        raise InvalidInputError(f"'{unknown[0]}' is not a field of a TC string write", field=unknown[0])
    if "Idempotency-Key" in request.headers:
        raise InvalidInputError("is not taken with tc_string: send the string again instead", field="Idempotency-Key")
    source, actor = body.get("source"), body.get("actor", "subject")
    if not isinstance(source, str) or not source:
        raise InvalidInputError("is required and must be a non-empty string", field="source")
    if not isinstance(actor, str):
        raise InvalidInputError("must be a string", field="actor")
    client = client_of(request)
    recorded = consent_record_tc_string(
        reference=required_reference(body),
        tc_string=body.get("tc_string"),
        source=source,
        actor=actor,
        client_id=client.id,
        client_purposes=client.purposes,
    )
    return fast_json_response(recorded.as_body(), status=201)


# The InputSerializer's string fields and their limits; the required ones first.
_REQUIRED = {"purpose": 64, "action": 16, "source": 64}
_OPTIONAL = {"channel": 64, "notice_version": 64, "actor": 32}
_FIELDS = frozenset({"subject", "occurred_at", "evidence", *_REQUIRED, *_OPTIONAL})


def plain_input(data: Any) -> dict[str, Any] | None:
    """The usual write's input as ConsentCreateApi.InputSerializer would validate it, without building the
    serializer (its fields are deep-copied on every request): plain strings within their limits, no `occurred_at`,
    evidence without moments. None for anything else, which the serializer then judges and words the errors of.
    The subject reference is parsed as its field parses it (its errors are the same domain errors)."""
    if type(data) is not dict or not data.keys() <= _FIELDS or data.get("occurred_at") is not None:
        return None
    out: dict[str, Any] = {}
    for name, limit in (*_REQUIRED.items(), *_OPTIONAL.items()):
        value = data.get(name)
        if value is None:
            if name in _REQUIRED:
                return None
            if name in data:
                out[name] = None  # allow_null: the serializer keeps an explicit null
            continue
        # DRF's CharField trims, refuses blanks and NUL, and turns numbers into strings: leave those to it.
        if type(value) is not str or not value or len(value) > limit or value.strip() != value or "\x00" in value:
            return None
        out[name] = value
    evidence = data.get("evidence", {})
    if type(evidence) is not dict or any(key.endswith("_at") for key in evidence):
        return None
    if "subject" not in data:
        return None
    out["subject"] = parse_reference(data["subject"], field="subject")
    out.setdefault("actor", "subject")
    out["evidence"] = dict(evidence)
    return out


class JsonLdRenderer(JSONRenderer):
    media_type = DPV_MEDIA_TYPE
    format = "jsonld"


class SubjectConsentsApi(APIView):
    required_scope = "consent:read"
    renderer_classes = [JSONRenderer, JsonLdRenderer]

    class StateOutputSerializer(serializers.Serializer):
        purpose = serializers.CharField()
        channel = serializers.CharField()
        state = serializers.CharField()
        reason = serializers.CharField()
        since = serializers.DateTimeField()
        notice_version = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="subject_consents",
        summary="A person's consent states",
        description=(
            "Every purpose and channel the person has a state for, with the `reason` a check would answer now "
            "(an expired consent or an outdated notice shows here). Only the client's purposes when it is "
            "restricted to some. A merged-away id answers for the surviving person. With `Accept: "
            "application/ld+json` the same record as JSON-LD in the DPV profile of ISO/IEC TS 27560 (one "
            "`dpv:Consent` per purpose and channel, with its DPV status, purpose, legal basis and ledger event)."
        ),
        tags=["consents"],
        responses={
            (200, "application/json"): inline_serializer(
                "SubjectConsents", {"subject": serializers.UUIDField(), "states": StateOutputSerializer(many=True)}
            ),
            (200, DPV_MEDIA_TYPE): OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="JSON-LD: `@context`, `@graph` of the person, the controller and one `dpv:Consent` each",
            ),
            **problems({404: "Problem details: unknown subject"}),
        },
    )
    def get(self, request: Request, subject_id: uuid.UUID) -> Response:
        subject = subject_get_survivor(subject_id=subject_id)
        allowed = client_of(request).purposes
        if request.accepted_renderer.format == JsonLdRenderer.format:
            return Response(consent_record_jsonld(subject_id=subject.id, purposes=allowed))
        snapshot = catalogue_snapshot()
        policy_state = subject_states_for_policy(subject_ids=[subject.id]).get(subject.id)
        now = timezone.now()
        states = []
        for row in consent_states_list(subject_id=subject.id):
            if allowed and row.purpose not in allowed:
                continue
            info = snapshot.purposes.get(row.purpose)
            decision = (
                decide(policy_state, info.rule, row.channel, Action.CHECK, now)
                if info
                else Decision(False, Reason.UNAVAILABLE, None)
            )
            states.append(
                {
                    "purpose": row.purpose,
                    "channel": row.channel,
                    "state": row.status,
                    "reason": decision.reason.value,
                    "since": row.since,
                    "notice_version": row.notice_version or None,
                }
            )
        return Response({"subject": str(subject.id), "states": states})


class SubjectConsentHistoryApi(APIView):
    required_scope = "consent:read"

    class EventOutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(help_text="the event; its receipt is at /api/v1/consents/events/{id}/receipt")
        seq = serializers.IntegerField()
        action = serializers.CharField()
        purpose = serializers.CharField(allow_null=True)
        channel = serializers.CharField(allow_null=True)
        notice_version = serializers.CharField(allow_null=True)
        source = serializers.CharField()  # type: ignore[assignment]
        actor = serializers.CharField()
        occurred_at = serializers.DateTimeField()
        recorded_at = serializers.DateTimeField()
        prev_hash = serializers.CharField()
        hash = serializers.CharField()

    @extend_schema(
        operation_id="subject_consent_history",
        summary="A person's consent history",
        description=(
            "Every consent event of the person in chain order, with `prev_hash` and `hash`: each event's hash covers "
            "the one before, so a changed or missing event shows."
        ),
        tags=["consents"],
        responses={
            200: inline_serializer("ConsentHistory", {"results": EventOutputSerializer(many=True)}),
            **problems({404: "Problem details: unknown subject"}),
        },
    )
    def get(self, request: Request, subject_id: uuid.UUID) -> Response:
        subject = subject_get_survivor(subject_id=subject_id)
        allowed = client_of(request).purposes
        results = [
            {
                "id": e.id,
                "seq": e.seq,
                "action": e.action,
                "purpose": e.purpose or None,
                "channel": e.channel or None,
                "notice_version": e.notice_version or None,
                "source": e.source,
                "actor": e.actor,
                "occurred_at": e.occurred_at,
                "recorded_at": e.recorded_at,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in consent_history_list(subject_id=subject.id)
            if not allowed or not e.purpose or e.purpose in allowed
        ]
        return Response({"results": results})
