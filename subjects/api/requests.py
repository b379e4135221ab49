"""Rights-request endpoints (API.md, /requests): thin views that parse, call one service or selector of
subjects.rights, and shape the output."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.translation import get_language_from_request
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApiKeyAuthentication, HasScope, SubjectReferenceField, client_of, problems
from config.schema import EXAMPLE_PERSON, example
from subjects.models import RightsRequest
from subjects.portal.selectors import request_of_person
from subjects.portal.session import portal_subject_id
from subjects.rights.art19 import result_public
from subjects.rights.connector import connector_callback
from subjects.rights.details import details_parse
from subjects.rights.errors import ConnectorSignatureError
from subjects.rights.exports import export_open, export_url
from subjects.rights.requests import Actor, request_approve, request_lift, request_open, request_verify
from subjects.rights.selectors import RequestView, request_get

SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
NOT_FOUND = {404: "Problem details: unknown request"}
STATE_PROBLEMS = problems({**NOT_FOUND, 409: "Problem details: not possible in this state (`code: request_state`)"})


def actor_of(request: Request) -> Actor:
    client = client_of(request)
    return Actor(label=f"client:{client.name}", client_id=client.id, client_purposes=client.purposes)


def request_body(view: RequestView) -> dict[str, Any]:
    request = view.request
    result = result_public(request.result, request.pk)  # Art. 19: each recipient, when told, when it acknowledged
    if view.has_export and request.status == RightsRequest.Status.COMPLETED:
        # Issued afresh on every GET: valid 7 days from now, and it still needs a Bearer key with requests:read.
        result["export_url"] = export_url(request_id=request.pk)
    return {
        "id": str(request.pk),
        "kind": request.kind,
        "status": request.status,
        "received_at": request.received_at,
        "due_at": request.due_at,
        "extended_until": request.extended_until,
        "verified_at": request.verified_at,
        "parts": view.parts,
        "history": view.history,
        "result": result,
    }


class PartSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "running", "done", "failed", "skipped"])
    error = serializers.CharField(allow_null=True)


class HistorySerializer(serializers.Serializer):
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=RightsRequest.Status.values)
    at = serializers.DateTimeField()
    by = serializers.CharField()
    note = serializers.CharField()


class RequestOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RightsRequest"

    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=RightsRequest.Kind.values)
    status = serializers.ChoiceField(choices=RightsRequest.Status.values)
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    extended_until = serializers.DateTimeField(allow_null=True)
    verified_at = serializers.DateTimeField(allow_null=True)
    parts = PartSerializer(many=True)
    history = HistorySerializer(many=True)
    result = serializers.DictField(
        help_text=(
            "Counts, names and dates, never personal data. Every kind: `data_found`, `message` (the same words for a "
            "person nobody knows as for any request that found nothing). Access and portability: `export_url` "
            "(absolute, signed, valid 7 days, re-issued on every GET; needs a Bearer key with requests:read), "
            "`export`, `summary`. Erasure: per source `deleted` and `kept` (where, why, until), `kept`, `recipients`."
        )
    )


class RequestCreateApi(APIView):
    required_scope = "requests:write"

    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField(max_length=32)
        subject = SubjectReferenceField()
        channel = serializers.CharField(max_length=64, help_text="where the request was received: a slug")
        verified = serializers.BooleanField(required=False, default=False)
        details = serializers.JSONField(required=False, default=dict)

        def validate_channel(self, value: str) -> str:
            # Here, not after the serializer, so the problem names it beside any other bad field.
            if not SLUG.match(value):
                raise serializers.ValidationError("must be a lower-case slug such as 'portal' or 'callcenter'")
            return value

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        kind = serializers.ChoiceField(choices=RightsRequest.Kind.values)
        status = serializers.ChoiceField(choices=RightsRequest.Status.values)
        due_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="rights_request_open",
        summary="Open a rights request",
        tags=["requests"],
        request=InputSerializer,
        examples=[
            example(
                "Access (Art. 15), identity checked by the call centre",
                {"kind": "access", "subject": EXAMPLE_PERSON, "channel": "callcenter", "verified": True},
            ),
            example(
                "Objection to direct marketing (Art. 21(2))",
                {
                    "kind": "objection",
                    "subject": EXAMPLE_PERSON,
                    "channel": "email",
                    "details": {"scope": "direct_marketing"},
                },
            ),
            example(
                "Restriction while accuracy is contested (Art. 18(1)(a))",
                {
                    "kind": "restriction",
                    "subject": EXAMPLE_PERSON,
                    "channel": "letter",
                    "verified": True,
                    "details": {"ground": "18(1)(a)"},
                },
            ),
        ],
        responses={
            202: OutputSerializer,
            **problems(
                {409: "Problem details: an identical request is open (its `id`), or an ambiguous subject"}, body=True
            ),
        },
        description=(
            'Open a rights request. `details`: objection `{"scope": "direct_marketing"}` or `{"purpose": KEY}`; '
            'rectification `{"identifiers": {...}, "profile": {...}, "evidence": {...}}`; restriction '
            '`{"ground": "18(1)(a)"}`; none for the other kinds. `verified`: the caller checked the identity '
            "(else the request waits for `/verify`). `due_at` is the Art. 12(3) deadline. Never creates a subject."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        details = details_parse(kind=data["kind"], raw=data["details"])
        opened = request_open(
            kind=data["kind"],
            reference=data["subject"],
            channel=data["channel"],
            verified=data["verified"],
            details=details,
            actor=actor_of(request),
            # The person's language as the caller names it (Accept-Language: the API itself always speaks
            # English); without the header the person's mails speak the default language.
            language=get_language_from_request(request) if "HTTP_ACCEPT_LANGUAGE" in request.META else "",
        )
        body = {"id": str(opened.pk), "kind": opened.kind, "status": opened.status, "due_at": opened.due_at}
        return Response(self.OutputSerializer(body).data, status=202)


class RequestDetailApi(APIView):
    required_scope = "requests:read"

    @extend_schema(
        operation_id="rights_request_get",
        summary="A rights request",
        description=(
            "A request's status, deadline, parts and history; its `result` once completed (the export link of an "
            "access or portability request, the report of an erasure). Only requests this client may see."
        ),
        tags=["requests"],
        responses={200: RequestOutputSerializer, **problems(NOT_FOUND)},
    )
    def get(self, request: Request, request_id: uuid.UUID) -> Response:
        view = request_get(request_id=request_id, actor=actor_of(request))
        return Response(RequestOutputSerializer(request_body(view)).data)


def _act(request: Request, request_id: uuid.UUID, service: Callable[..., object], status: int) -> Response:
    """A state change on one request: 404 for a request this client may not see, then the service, then the
    request as it now stands."""
    actor = actor_of(request)
    request_get(request_id=request_id, actor=actor)
    service(request_id=request_id, actor=actor)
    return Response(RequestOutputSerializer(request_body(request_get(request_id=request_id))).data, status=status)


class RequestVerifyApi(APIView):
    required_scope = "requests:write"

    @extend_schema(
        operation_id="rights_request_verify",
        summary="Verify the requester",
        tags=["requests"],
        request=None,
        responses={200: RequestOutputSerializer, **STATE_PROBLEMS},
        description="Record that the calling client checked the person's identity (Art. 12(6)).",
    )
    def post(self, request: Request, request_id: uuid.UUID) -> Response:
        return _act(request, request_id, request_verify, 200)


class RequestApproveApi(APIView):
    required_scope = "requests:approve"

    @extend_schema(
        operation_id="rights_request_approve",
        summary="Approve an erasure",
        tags=["requests"],
        request=None,
        responses={202: RequestOutputSerializer, **STATE_PROBLEMS},
        description="Approve an erasure awaiting approval; 409 in any other state.",
    )
    def post(self, request: Request, request_id: uuid.UUID) -> Response:
        return _act(request, request_id, request_approve, 202)


class RequestLiftApi(APIView):
    required_scope = "requests:approve"

    @extend_schema(
        operation_id="rights_request_lift",
        summary="Lift a restriction",
        tags=["requests"],
        request=None,
        responses={202: RequestOutputSerializer, **STATE_PROBLEMS},
        description="End a restriction: the person is told first (Art. 18(3)), then it is lifted. 409 unless a "
        "completed restriction that is not lifted.",
    )
    def post(self, request: Request, request_id: uuid.UUID) -> Response:
        return _act(request, request_id, request_lift, 202)


class PortalPerson:
    """The person of a portal session, opening the export of their own request (API.md: the export link also opens
    with "the same person's portal session" instead of a Bearer key)."""

    def __init__(self, request_id: uuid.UUID) -> None:
        self.request_id = request_id


class OwnExportInPortal(BaseAuthentication):
    """Tried before the key, only when no key is sent: the portal session's person, for their own request (a merge
    followed). Anyone else (no session, another person's) falls through to the key, which answers 401."""

    def authenticate(self, request: Request) -> tuple[PortalPerson, PortalPerson] | None:
        if get_authorization_header(request):
            return None
        request_id = (request.parser_context or {}).get("kwargs", {}).get("request_id")
        if not isinstance(request_id, uuid.UUID):
            return None
        own = request_of_person(request_id=request_id, subject_id=portal_subject_id(request._request))
        if own is None:
            return None
        person = PortalPerson(own.pk)
        return person, person


class IsPortalPerson(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, PortalPerson)


class RequestExportApi(APIView):
    required_scope = "requests:read"
    authentication_classes = [OwnExportInPortal, ApiKeyAuthentication]
    permission_classes = [IsPortalPerson | HasScope]

    @extend_schema(
        operation_id="rights_request_export",
        summary="Download an export",
        tags=["requests"],
        parameters=[OpenApiParameter("token", str, OpenApiParameter.QUERY, required=True)],
        responses={
            (200, "application/zip"): OpenApiResponse(response=OpenApiTypes.BINARY, description="the export (zip)"),
            **problems({404: "Problem details: unknown request, or no export behind this token"}),
        },
        description="Download an export through its signed `export_url` (valid 7 days), with a Bearer key or in the "
        "same person's portal session.",
    )
    def get(self, request: Request, request_id: uuid.UUID) -> StreamingHttpResponse:
        if not isinstance(request.auth, PortalPerson):  # the portal's person was matched to the request already
            request_get(request_id=request_id, actor=actor_of(request))
        chunks, size = export_open(request_id=request_id, token=request.query_params.get("token", ""))
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="assent-export-{request_id}.zip"'
        response["Content-Length"] = str(size)
        response["Cache-Control"] = "no-store"
        return response


class ConnectorSignature(BaseAuthentication):
    """The callback of a connected system is authenticated by its signature (Standard Webhooks, the connector's
    secret), checked by the service; no Bearer key. Without the signature headers it is 401 at once."""

    def authenticate(self, request: Request) -> tuple[None, None] | None:
        if not request.headers.get("webhook-signature"):
            raise ConnectorSignatureError("the callback carries no webhook-signature")
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Signature realm="assent-connector"'


class SignedCallback(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return True  # the signature is checked against the connector's secret by the service, fail closed


class RequestPartResultApi(APIView):
    authentication_classes = [ConnectorSignature]
    permission_classes = [SignedCallback]

    @extend_schema(
        operation_id="rights_request_part_result",
        summary="A connected system's late answer",
        tags=["requests"],
        auth=[],
        request=OpenApiTypes.OBJECT,
        examples=[
            example(
                "An erasure done, one table kept",
                {
                    "erased": ["customer", "address"],
                    "kept": [{"what": "orders", "why": "§147 AO", "until": "2034-12-31"}],
                },
                description="Sent by the connected system, signed with the connector's secret (webhook-id, "
                "webhook-timestamp, webhook-signature); Swagger UI cannot sign it.",
            )
        ],
        responses={
            202: OpenApiResponse(description="taken: the part completes with it"),
            **problems(
                {
                    401: "Problem details: unsigned, or the signature does not verify (`code: invalid_signature`)",
                    **NOT_FOUND,
                    409: "Problem details: the part does not wait for an answer (`code: request_state`)",
                }
            ),
        },
        description="A connected system's answer to an access or erasure part it took with 202 (API.md, "
        "Connectors): the same body as its 200 answer, signed like a webhook with the connector's secret.",
    )
    def post(self, request: Request, request_id: uuid.UUID, part: str) -> Response:
        connector_callback(request_id=request_id, part=part, body=request.body, headers=dict(request.headers))
        return Response({"status": "accepted"}, status=202)
