"""Webhook subscriptions (API.md, `webhooks:manage`): subscribe, list, end. Thin: parse, call
consent.webhooks.subscriptions, shape the output. A client sees and ends only its own subscriptions."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import client_of, problems
from config.schema import example
from consent.webhooks.models import WebhookEvent, WebhookSubscription
from consent.webhooks.outbox import ALL, EVENT_TYPES
from consent.webhooks.subscriptions import subscription_create, subscription_end, subscriptions_of_client
from consent.webhooks.urls import MAX_URL_LENGTH

EVENT_CHOICES = [*EVENT_TYPES, ALL]


class WebhookSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Webhook"

    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES))
    created_at = serializers.DateTimeField()


def _shape(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": str(subscription.pk),
        "url": subscription.url,
        "events": list(subscription.events),
        "created_at": subscription.created_at.isoformat(),
    }


class WebhookListCreateApi(APIView):
    required_scope = "webhooks:manage"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "WebhookCreate"

        url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text="https (http only for loopback in tests)")
        events = serializers.ListField(
            child=serializers.CharField(max_length=40),
            min_length=1,
            max_length=len(EVENT_CHOICES),
            help_text=f"event types ({', '.join(EVENT_TYPES)}), or ['*'] for all",
        )

    @extend_schema(
        operation_id="webhook_create",
        summary="Subscribe to events",
        tags=["webhooks"],
        request=InputSerializer,
        examples=[
            example(
                "A receiver in local development",
                {"url": "http://127.0.0.1:8025/assent-events", "events": ["*"]},
                description="http and loopback only where ASSENT_WEBHOOK_ALLOW_LOOPBACK=1 (local development).",
            ),
            example(
                "Consent changes to a CRM",
                {
                    "url": "https://crm.example.com/hooks/assent",
                    "events": [WebhookEvent.Type.CONSENT_CHANGED.value, WebhookEvent.Type.SUBJECT_ERASED.value],
                },
                description="Production: https to a public address.",
            ),
        ],
        responses={
            201: inline_serializer(
                "WebhookCreated",
                {
                    "id": serializers.UUIDField(),
                    "url": serializers.CharField(),
                    "events": serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES)),
                    "created_at": serializers.DateTimeField(),
                    "secret": serializers.CharField(help_text="whsec_...: shown this once; verifies signatures"),
                },
            ),
            **problems(
                {400: "Problem details: bad input, or `webhook_url_refused` (not https, a private address ...)"},
                body=True,
            ),
        },
        description="Subscribe an endpoint to events, delivered as Standard Webhooks signed with the secret.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = subscription_create(client_id=client_of(request).id, url=data["url"], events=data["events"])
        return Response({**_shape(created.subscription), "secret": created.secret}, status=201)

    @extend_schema(
        operation_id="webhook_list",
        summary="List subscriptions",
        tags=["webhooks"],
        responses={200: inline_serializer("WebhookList", {"results": WebhookSerializer(many=True)}), **problems()},
        description="This client's live subscriptions (never their secrets).",
    )
    def get(self, request: Request) -> Response:
        subscriptions = subscriptions_of_client(client_id=client_of(request).id)
        return Response({"results": [_shape(s) for s in subscriptions]})


class WebhookEndApi(APIView):
    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhook_delete",
        summary="End a subscription",
        tags=["webhooks"],
        responses={204: None, **problems({404: "Problem details: no such subscription of this client"})},
        description="End a subscription: nothing more is sent to it, including what was still waiting.",
    )
    def delete(self, request: Request, webhook_id: uuid.UUID) -> Response:
        subscription_end(subscription_id=webhook_id, client_id=client_of(request).id)
        return Response(status=204)
