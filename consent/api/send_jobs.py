"""Send jobs (API.md `/api/v1/send-jobs`): a large send uploaded as NDJSON and gated by a worker. Thin: parse the
query and the headers, hand the body's stream to consent.send_jobs, shape the output."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import client_of, every_field_error, fast_json_response, problems
from config.errors import InvalidInputError
from config.schema import EXAMPLE_OTHER, EXAMPLE_PERSON, example
from consent.gates.sends import CAMPAIGN_MAX_LENGTH, send_target
from consent.models import SendJob
from consent.send_jobs.selectors import send_job_get, send_job_result_path
from consent.send_jobs.services import send_job_create

NDJSON = "application/x-ndjson"
QUERY_LIMITS = (("campaign", CAMPAIGN_MAX_LENGTH), ("purpose", 64), ("channel", 64))


def _query_string(request: Request, name: str, max_length: int) -> str:
    value = request.query_params.get(name, "")
    if not value.strip():
        raise InvalidInputError("is required and must be a non-empty string", field=name)
    if len(value) > max_length:
        raise InvalidInputError(f"must be at most {max_length} characters", field=name)
    return value


def _job_body(job: SendJob) -> dict[str, Any]:
    done = job.status == SendJob.Status.COMPLETED
    return {
        "id": job.id,
        "status": job.status,
        "total": job.total,
        "processed": job.processed,
        "allowed": job.allowed,
        "blocked": job.blocked,
        "send": job.send_id,
        "result_url": f"{settings.ASSENT_BASE_URL}/api/v1/send-jobs/{job.id}/result" if done else None,
    }


JobSerializer = inline_serializer(
    "SendJob",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=SendJob.Status.values),
        "total": serializers.IntegerField(help_text="lines uploaded"),
        "processed": serializers.IntegerField(),
        "allowed": serializers.IntegerField(),
        "blocked": serializers.IntegerField(help_text="malformed lines included"),
        "send": serializers.UUIDField(allow_null=True, help_text="the send this job is logged as"),
        "result_url": serializers.URLField(allow_null=True, help_text="once completed"),
    },
)


def _query(name: str, description: str, value: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        str,
        OpenApiParameter.QUERY,
        required=True,
        description=description,
        examples=[OpenApiExample(value, value=value)],
    )


class SendJobCreateApi(APIView):
    required_scope = "sends:create"

    @extend_schema(
        operation_id="send_job_create",
        summary="Upload a large send",
        tags=["send-jobs"],
        parameters=[
            _query("campaign", "the campaign's name, 1 to 200 characters", "spring-sale-2026"),
            _query("purpose", "purpose key", "newsletter"),
            _query("channel", "channel key", "email"),
        ],
        request={NDJSON: OpenApiTypes.STR},
        examples=[
            example(
                "Three recipients",
                "".join(
                    json.dumps(line) + "\n" for line in (EXAMPLE_PERSON, EXAMPLE_OTHER, {"phone": "+49 151 23456703"})
                ),
                media_type=NDJSON,
            )
        ],
        responses={
            202: inline_serializer(
                "SendJobQueued",
                {"id": serializers.UUIDField(), "status": serializers.ChoiceField(choices=["queued"])},
            ),
            **problems(
                {
                    400: "Problem details: bad query (as `/sends`), an empty body (`code: empty`), a broken gzip "
                    "stream (`code: malformed`)",
                    413: "Problem details: more lines or bytes than allowed (`code: too_large`)",
                    415: "Problem details: the body is not `application/x-ndjson`, or its content coding is not "
                    "gzip (`code: unsupported_media_type`)",
                },
                body=True,
            ),
        },
        description=(
            "A large send: one subject reference per line (`Content-Encoding: gzip` allowed), up to 10,000,000 "
            "lines. A worker gates it with the rules of `/sends` and logs it as one send. A malformed line is "
            "blocked in the result (`reason: invalid_reference`, `error` says why); it does not fail the job."
        ),
    )
    def post(self, request: Request) -> HttpResponse:
        try:
            campaign, purpose, channel = (_query_string(request, name, limit) for name, limit in QUERY_LIMITS)
        except InvalidInputError as exc:
            checks = [functools.partial(_query_string, request, name, limit) for name, limit in QUERY_LIMITS]
            raise every_field_error(exc, checks) from None
        client = client_of(request)
        info = send_target(purpose=purpose, channel=channel, client_purposes=client.purposes)
        if request.content_type.split(";")[0].strip().lower() != NDJSON:
            raise UnsupportedMediaType(request.content_type)
        coding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("identity", "gzip", "x-gzip"):
            raise UnsupportedMediaType(f"Content-Encoding {coding[:40]}")
        job = send_job_create(
            client_id=client.id,
            campaign=campaign,
            info=info,
            channel=channel,
            body=request.stream,  # read in pieces: 10,000,000 lines never sit in memory
            gzipped=coding != "identity",
        )
        response = fast_json_response({"id": str(job.id), "status": job.status}, status=202)
        response["Location"] = f"/api/v1/send-jobs/{job.id}"
        return response


class SendJobApi(APIView):
    required_scope = "sends:create"

    @extend_schema(
        operation_id="send_job_read",
        summary="A send job's progress",
        tags=["send-jobs"],
        responses={200: JobSerializer, **problems({404: "Problem details: no such job of this client"})},
        description="A send job's progress; `result_url` once it is completed.",
    )
    def get(self, request: Request, job_id: uuid.UUID) -> HttpResponse:
        return fast_json_response(_job_body(send_job_get(job_id=job_id, client_id=client_of(request).id)))


class SendJobResultApi(APIView):
    required_scope = "sends:create"

    @extend_schema(
        operation_id="send_job_result",
        summary="A send job's result",
        tags=["send-jobs"],
        responses={
            (200, NDJSON): OpenApiResponse(
                response=OpenApiTypes.STR,
                description='one line per input line, in input order: `{"index", "allowed", "recipient", "subject", '
                "...}` with the `/sends` fields of an allowed or a blocked item",
            ),
            **problems(
                {
                    404: "Problem details: no such job of this client",
                    409: "Problem details: the job is not completed (`code: job_not_completed`)",
                    410: "Problem details: the result was deleted, some days after the job ended (`code: result_gone`)",
                }
            ),
        },
        description="The result of a completed send job, streamed.",
    )
    def get(self, request: Request, job_id: uuid.UUID) -> FileResponse:
        path = send_job_result_path(job_id=job_id, client_id=client_of(request).id)
        response = FileResponse(open(path, "rb"), content_type=NDJSON)  # noqa: SIM115 (FileResponse closes it)
        response["Cache-Control"] = "no-store"
        return response
