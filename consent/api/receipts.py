"""Consent receipts (consent.receipts): one event's signed receipt, and the keys that verify it."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import JsonOnlyNegotiation, client_of, problems
from consent.receipts import MEDIA_TYPE, jwks, receipt_for_event


class ConsentReceiptApi(APIView):
    required_scope = "consent:read"
    # Problems are JSON whatever the Accept header asks (a client asking for application/jose gets a 404 it can read,
    # not a 406); the receipt itself is written below as the compact JWS text.
    content_negotiation_class = JsonOnlyNegotiation

    @extend_schema(
        operation_id="consent_receipt",
        summary="A consent event's signed receipt",
        description=(
            "The receipt of a grant, withdrawal, objection or confirmation: a compact JWS (`application/jose`) signed "
            "with EdDSA (Ed25519), its key named by `kid` in the header and published at `/.well-known/jwks.json`. "
            "The payload holds the Kantara Consent Receipt v1.1 fields and, under `record`, the event as ISO/IEC TS "
            "27560 describes it, with the ledger's `seq` and `hash`. The event ids are those of the person's history."
        ),
        tags=["consents"],
        responses={
            (200, MEDIA_TYPE): OpenApiResponse(response=OpenApiTypes.STR, description="the compact JWS"),
            **problems(
                {
                    404: "Problem details: no such event of a purpose this client may see, or an event that has no "
                    "receipt (`code: receipt_not_found`)",
                    503: "Problem details: no signing key is configured (`code: receipts_unavailable`)",
                }
            ),
        },
    )
    def get(self, request: Request, event_id: uuid.UUID) -> HttpResponse:
        token = receipt_for_event(event_id=event_id, purposes=client_of(request).purposes)
        response = HttpResponse(token, content_type=MEDIA_TYPE)
        response["Cache-Control"] = "no-store"
        return response


@require_GET
def jwks_view(request: HttpRequest) -> JsonResponse:
    """/.well-known/jwks.json: public; cacheable for five minutes (a verifier meeting an unknown `kid` asks again)."""
    response = JsonResponse(jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response
