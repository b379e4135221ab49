"""The product's urlconf plus `bench/floor`: the floor the single check is measured against.

The floor is a bare Django function view on the same server (same middleware, same database settings) that
does the least a check must do: read the same JSON body, compute the blind index of the e-mail, and make one
indexed lookup of the identifier table. No authentication, rate limit, DRF, catalogue or policy.

`bench/floor/row/<id>`: the floor of the gated profile read (tests/benchmarks/identity_phases.py): a bare GET
view that reads one Subject row by primary key and answers a few of its columns as JSON.

`bench/floor/write`: the floor of the consent write (the `writes` phase of tests/benchmarks/run.py): a bare POST
view that reads the same JSON body and inserts one row of it into `bench_floor_write` (a plain table the run
creates: tests/benchmarks/environment.FLOOR_WRITE_TABLE) in a durable transaction, answering 201 with the row's id.
No authentication, rate limit, DRF, resolution, lock, encryption or hash chain: what any durable write over this
stack costs."""

from __future__ import annotations

import json
import uuid

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from subjects.keys import blind_index
from subjects.models import Identifier, Subject
from tests.benchmarks import whatif


@csrf_exempt
def floor(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    digest = blind_index().lookup("email", body["subject"]["email"])
    subject_id = Identifier.objects.filter(blind_index=digest).values_list("subject_id", flat=True).first()
    return JsonResponse({"found": subject_id is not None, "subject": str(subject_id) if subject_id else None})


def floor_row(request: HttpRequest, subject_id: uuid.UUID) -> JsonResponse:
    subject = Subject.objects.filter(pk=subject_id).first()
    if subject is None:
        return JsonResponse({"found": False}, status=404)
    return JsonResponse({"subject": str(subject.id), "status": subject.status, "created_at": subject.created_at})


@csrf_exempt
def floor_write(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor_write (subject, purpose, channel, action, body, created_at) "
            "VALUES (%s, %s, %s, %s, %s, now()) RETURNING id",
            [
                json.dumps(body["subject"]),
                body["purpose"],
                body.get("channel") or "",
                body["action"],
                request.body.decode(),
            ],
        )
        (row_id,) = cursor.fetchone()
    return JsonResponse({"id": row_id}, status=201)


urlpatterns = [
    path("bench/floor", floor, name="bench-floor"),
    path("bench/floor/row/<uuid:subject_id>", floor_row, name="bench-floor-row"),
    path("bench/floor/write", floor_write, name="bench-floor-write"),
    # What-if prototypes (estimates for the lead, not product code): see tests/benchmarks/whatif.py.
    path("bench/whatif/check", whatif.check),
    path("bench/whatif/check-no-limit", whatif.check_no_limit),
    path("bench/whatif/check-bulk", whatif.check_bulk),
    path("", include("config.urls")),
]
