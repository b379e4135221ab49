"""What-if prototypes of a lean check path, served only by the bench server (tests/benchmarks/floor_urls.py) and
measured with `python -m tests.benchmarks.run --what-if`: how fast could the check be if the product's path
did X? They are estimates for the lead, NOT product code, and they cut corners on purpose:
- references with exactly one identifier (no ids, no merges of several identifiers' owners, no ambiguity);
- the consent path of the policy only as far as `decide` needs it for the purpose asked (no UWG §7(3)
  existing-customer channels, which a consent purpose never looks at).
What they keep from the product: the API key check (consent.clients.client_authenticate, cached), the optional
Redis rate-limit counter (consent.clients.client_rate_limit_hit), reference parsing (subjects.identity),
the catalogue snapshot and `consent.policy.decide`, so the decisions are the product's.

The difference to the product's path: no DRF (a plain Django view), and one SQL statement with an array
parameter instead of the ORM's four queries with IN lists."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from consent.catalogue.snapshot import catalogue_snapshot
from consent.clients import client_authenticate, client_rate_limit_hit
from consent.policy import Action as PolicyAction
from consent.policy import Actor, ConsentFact, ConsentStatus, SubjectState, decide
from subjects.identity import parse_reference
from subjects.keys import blind_index

_SQL = """
SELECT i.blind_index, v.id::text, v.status, v.is_child, v.restricted_at IS NOT NULL,
       v.erasure_started_at IS NOT NULL, v.erased_at IS NOT NULL,
       cs.status, cs.notice_version, cs.granted_at, cs.confirmed, cs.actor, cs.suppressed,
       ARRAY(SELECT o.purpose FROM consent_objection o WHERE o.subject_id = v.id AND o.purpose IN (%s, ''))
FROM subjects_identifier i
JOIN subjects_subject s ON s.id = i.subject_id
JOIN subjects_subject v ON v.id = coalesce(s.merged_into_id, s.id)
LEFT JOIN consent_consentstate cs ON cs.subject_id = v.id AND cs.purpose = %s AND cs.channel = %s
WHERE i.blind_index = ANY(%s)
"""
_EMPTY: dict[tuple[str, str], ConsentFact] = {}
_JIT_OFF: set[int] = set()


def _unauthorised() -> JsonResponse:
    return JsonResponse({"status": 401, "code": "unauthorized"}, status=401)


def _decide_many(digests: list[bytes], purpose: str, channel: str) -> tuple[list[dict[str, Any]], int]:
    snapshot = catalogue_snapshot()
    info = snapshot.purposes.get(purpose)
    if info is None:
        return [], 400
    rule = info.rule
    now = timezone.now()
    with connection.cursor() as cursor:
        if id(connection.connection) not in _JIT_OFF:
            # A 10,000-element array makes the planner's estimate cross jit_above_cost: JIT compiling costs
            # ~70-100 ms per statement here and saves nothing on index lookups.
            cursor.execute("SET jit = off")
            _JIT_OFF.add(id(connection.connection))
        cursor.execute(_SQL, [purpose, purpose, channel, digests])
        rows = cursor.fetchall()
    by_digest: dict[bytes, tuple[str, SubjectState]] = {}
    for (
        digest,
        sid,
        status,
        is_child,
        restricted,
        erasing,
        erased,
        cs_status,
        version,
        granted_at,
        confirmed,
        actor,
        suppressed,
        objected,
    ) in rows:
        consents = _EMPTY
        if cs_status is not None:
            consents = {
                (purpose, channel): ConsentFact(
                    status=ConsentStatus(cs_status),
                    notice_version=version or None,
                    granted_at=granted_at,
                    confirmed=confirmed,
                    actor=Actor(actor) if actor in Actor._value2member_map_ else Actor.AGENT,
                    suppressed=suppressed,
                )
            }
        state = SubjectState(
            erased=status == "erased" or erased,
            erasure_in_progress=erasing,
            restricted=restricted,
            is_child=is_child,
            objects_to_direct_marketing="" in objected,
            objected_purposes=frozenset(p for p in objected if p),
            consents=consents,
        )
        by_digest[bytes(digest)] = (sid, state)
    # One answer dict per distinct decision, copied with the subject filled in.
    templates: dict[Any, dict[str, Any]] = {}
    results = []
    for digest in digests:
        found = by_digest.get(digest)
        sid, state = found if found else (None, None)
        decision = decide(state, rule, channel, PolicyAction.CHECK, now)
        template = templates.get(decision)
        if template is None:
            template = templates[decision] = {
                "allowed": decision.allowed,
                "reason": decision.reason.value,
                "legal_basis": decision.legal_basis.value if decision.legal_basis else None,
                "subject": None,
                "purpose": purpose,
                "channel": channel,
            }
        results.append({**template, "subject": sid})
    return results, 200


def _authenticate(request: HttpRequest, *, rate_limit: bool) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    client = client_authenticate(key=key.strip())
    if client is None or "consent:check" not in client.scopes:
        return False
    return not (rate_limit and client_rate_limit_hit(client_id=client.id) is not None)


def _single(request: HttpRequest, *, rate_limit: bool) -> JsonResponse:
    if not _authenticate(request, rate_limit=rate_limit):
        return _unauthorised()
    body = json.loads(request.body)
    reference = parse_reference(body["subject"])
    kind, value = reference.identifiers[0]
    results, status = _decide_many([blind_index().lookup(kind, value)], body["purpose"], body["channel"])
    return JsonResponse(results[0] if results else {"status": status}, status=status)


@csrf_exempt
def check(request: HttpRequest) -> JsonResponse:
    """Plain view + product auth + Redis rate limit + one SQL statement."""
    return _single(request, rate_limit=True)


@csrf_exempt
def check_no_limit(request: HttpRequest) -> JsonResponse:
    """As `check`, without the per-request Redis round trip of the rate limit."""
    return _single(request, rate_limit=False)


@csrf_exempt
def check_bulk(request: HttpRequest) -> JsonResponse:
    if not _authenticate(request, rate_limit=True):
        return _unauthorised()
    body = json.loads(request.body)
    index = blind_index()
    digests = []
    for raw in body["subjects"]:
        kind, value = parse_reference(raw).identifiers[0]
        digests.append(index.lookup(kind, value))
    results, status = _decide_many(digests, body["purpose"], body["channel"])
    return JsonResponse({"results": results}, status=status)
