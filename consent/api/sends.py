"""The marketing-send gate endpoint. Thin: parse, call consent.gates.sends, shape the output (orjson: up to
10,000 recipients)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import (
    SubjectReferenceField,
    bulk_checks,
    client_of,
    every_field_error,
    fast_json_body,
    fast_json_response,
    problems,
    reference_list,
    required_string,
)
from config.errors import InvalidInputError
from config.schema import EXAMPLE_OTHER, EXAMPLE_PERSON, example
from consent.gates.sends import CAMPAIGN_MAX_LENGTH, send_create, send_target
from consent.gates.unsubscribe import ONE_CLICK_BODY
from consent.policy import Reason
from subjects.identity import parse_reference


def _campaign(body: dict[str, Any]) -> str:
    campaign = body.get("campaign")
    if not isinstance(campaign, str) or not campaign.strip() or len(campaign) > CAMPAIGN_MAX_LENGTH:
        raise InvalidInputError(f"is required: 1 to {CAMPAIGN_MAX_LENGTH} characters", field="campaign")
    return campaign


class SendCreateApi(APIView):
    required_scope = "sends:create"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SendCreate"

        campaign = serializers.CharField(max_length=CAMPAIGN_MAX_LENGTH)
        purpose = serializers.CharField(max_length=64)
        channel = serializers.CharField(max_length=64)
        recipients = serializers.ListField(
            child=SubjectReferenceField(),
            min_length=1,
            max_length=settings.ASSENT_BULK_LIMIT,
            help_text="subject references",
        )

    class AllowedSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SendAllowed"

        index = serializers.IntegerField()
        recipient = serializers.DictField(help_text="the reference as sent")
        subject = serializers.UUIDField()
        unsubscribe_url = serializers.URLField(help_text="one-click unsubscribe page (RFC 8058); never expires")
        list_unsubscribe = serializers.CharField(help_text="value of the List-Unsubscribe header (RFC 2369)")
        list_unsubscribe_post = serializers.CharField(help_text="value of the List-Unsubscribe-Post header")

    class BlockedSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SendBlocked"

        index = serializers.IntegerField()
        recipient = serializers.DictField(help_text="the reference as sent")
        reason = serializers.ChoiceField(choices=[r.value for r in Reason])

    @extend_schema(
        operation_id="send_create",
        summary="Gate a marketing send",
        tags=["sends"],
        request=InputSerializer,
        examples=[
            example(
                "A newsletter to two people",
                {
                    "campaign": "spring-sale-2026",
                    "purpose": "newsletter",
                    "channel": "email",
                    "recipients": [EXAMPLE_PERSON, EXAMPLE_OTHER],
                },
                description="Send only to `allowed`, with its List-Unsubscribe headers; never to `blocked`.",
            )
        ],
        responses={
            201: inline_serializer(
                "SendCreated",
                {
                    "send": serializers.UUIDField(),
                    "allowed": AllowedSerializer(many=True),
                    "blocked": BlockedSerializer(many=True),
                },
            ),
            **problems(body=True),
        },
        description=(
            "Decide a marketing send for every recipient on one channel; logged with this client. 400 "
            "`purpose_not_marketing` for a purpose that is not direct marketing, 400 `channel_not_permitted` for a "
            "channel the purpose does not list. Allowed and blocked each keep input order. Up to 10,000 recipients; "
            "more as a send job (`/send-jobs`)."
        ),
    )
    def post(self, request: Request) -> HttpResponse:
        # No per-item serializer: 10,000 references are parsed in one pass.
        body = fast_json_body(request)
        try:
            campaign = _campaign(body)
            purpose, channel = required_string(body, "purpose"), required_string(body, "channel")
            recipients = reference_list(body, "recipients")
        except InvalidInputError as exc:
            raise every_field_error(exc, [lambda: _campaign(body), *bulk_checks(body, "recipients")]) from None
        client = client_of(request)
        info = send_target(purpose=purpose, channel=channel, client_purposes=client.purposes)
        try:
            references = [parse_reference(item, field=f"recipients[{i}]") for i, item in enumerate(recipients)]
        except InvalidInputError as exc:
            raise every_field_error(exc, bulk_checks(body, "recipients")) from None
        created = send_create(client_id=client.id, campaign=campaign, info=info, channel=channel, references=references)
        allowed: list[dict[str, Any]] = []
        blocked: list[dict[str, Any]] = []
        for outcome in created.recipients:
            if outcome.allowed:
                allowed.append(
                    {
                        "index": outcome.index,
                        "recipient": recipients[outcome.index],
                        "subject": str(outcome.subject_id),
                        "unsubscribe_url": outcome.unsubscribe_url,
                        "list_unsubscribe": f"<{outcome.unsubscribe_url}>",
                        "list_unsubscribe_post": ONE_CLICK_BODY,  # RFC 8058 header value
                    }
                )
            else:
                blocked.append(
                    {"index": outcome.index, "recipient": recipients[outcome.index], "reason": outcome.reason}
                )
        return fast_json_response({"send": str(created.send_id), "allowed": allowed, "blocked": blocked}, status=201)
