"""The purpose-bound profile read endpoint. Thin: parse, call consent.gates.profile_reads, shape the output."""

from __future__ import annotations

import uuid

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import JsonOnlyNegotiation, client_of, fast_json_response, problems
from config.errors import InvalidInputError
from consent.gates.profile_reads import profile_read_for_purpose


class SubjectProfileApi(APIView):
    required_scope = "profile:read"
    content_negotiation_class = JsonOnlyNegotiation

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ProfileRead"

        subject = serializers.UUIDField()
        purpose = serializers.CharField()
        data = serializers.DictField(  # type: ignore[assignment]
            help_text=(
                "Only the categories the purpose declares. A profile category holds the profile attributes (an "
                "object); any other category a list of the subject's linked records, each "
                "`{source, external_id, occurred_at, data}`. A declared category without data is `{}` or `[]`."
            )
        )
        withheld = serializers.ListField(
            child=serializers.CharField(),
            help_text="Categories the subject has data in that the purpose does not declare (not returned).",
        )

    @extend_schema(
        operation_id="subject_profile_read",
        summary="Read a person's data for a purpose",
        tags=["subjects"],
        parameters=[
            OpenApiParameter(
                "purpose",
                str,
                OpenApiParameter.QUERY,
                required=True,
                description="purpose key",
                examples=[OpenApiExample("Order updates", value="order-updates")],
            ),
        ],
        responses={
            200: OutputSerializer,
            **problems(
                {
                    403: "Problem details: purpose not granted to the client (`code: forbidden`), or a policy "
                    "denial (`code: policy_denied`, with `reason`)",
                    404: "Problem details: unknown subject",
                }
            ),
        },
        description=(
            "Read a person's data for one purpose: only the data categories the purpose declares, and only when the "
            "policy allows the purpose for the person now (else 403 `policy_denied` with `reason`). Logged as a "
            "read by this client (Art. 15(1)(c))."
        ),
    )
    def get(self, request: Request, subject_id: uuid.UUID) -> HttpResponse:
        purpose = request.query_params.get("purpose", "")
        if not purpose:
            raise InvalidInputError("is required: the purpose the data is read for", field="purpose")
        client = client_of(request)
        read = profile_read_for_purpose(
            subject_id=subject_id, purpose=purpose, client_id=client.id, client_purposes=client.purposes
        )
        return fast_json_response(read.as_body())
