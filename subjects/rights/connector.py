"""HTTP connectors (API.md, Connectors): an access or erasure part for a source whose catalogue entry names
`{"type": "http", "url", "secret_env"}` is POSTed to that system, signed like a webhook, as `{"request", "kind",
"subject", "identifiers": {kind: [values]}, "records": [{"external_id"}], "part"}` (`part`: the name its callback
goes to, `POST /api/v1/requests/{id}/parts/{part}/result`).

- 200 completes the part: access `{"data": {...}}` goes into the export as the system's own folder; erasure
  `{"erased": [...], "kept": [{"what", "why", "until"}]}` goes into the erasure report.
- 202: the part waits (running, held by nobody) for the signed callback with the same body; if none comes within
  the wait, it is sent again.
- Anything else is retried with backoff (about 5 s, 30 s, 2 min, then doubling up to an hour), and after
  ASSENT_CONNECTOR_ATTEMPTS attempts the part fails with the system's last answer.

What the system is asked is taken when the request starts (`connector_requests`): an erasure's own parts delete
the identifiers it names. It is kept sealed under the person's data key in the part's outcome, like the callback's
answer until the part reads it; the key is destroyed by the finish step, after every part."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from subjects import crypto, ports
from subjects.columns import IDENTIFIER_VALUE
from subjects.keys import data_key, decrypt_field
from subjects.locks import lock_subjects
from subjects.models import Identifier, LinkedRecord, RightsRequest, RightsRequestPart, Subject
from subjects.rights.context import CONNECTOR_PART, PartContext, PartWaitError
from subjects.rights.enqueue import RUN_PART, enqueue_on_commit
from subjects.rights.errors import (
    ConnectorError,
    ConnectorSignatureError,
    RequestNotFoundError,
    RequestStateError,
)
from subjects.rights.exports import blob_root, part_path, piece_name, sealed_writer

Part = RightsRequestPart
FIRST_DELAYS = (5.0, 30.0, 120.0)
MAX_DELAY = 3600.0
MAX_ERROR = 300


# ---------------------------------------------------------------------------------------------------------
# The request a system is sent, taken when the request starts
# ---------------------------------------------------------------------------------------------------------
def http_connector(catalogue: ports.RightsCatalogue, source: str) -> Mapping[str, Any] | None:
    facts = catalogue.sources.get(source)
    connector = facts.connector if facts else None
    return connector if connector and connector.get("type") == "http" else None


def _aad(request_id: uuid.UUID, part: str, what: str) -> bytes:
    return f"connector|{request_id}|{part}|{what}".encode()


def connector_requests(
    *, request: RightsRequest, subject_ids: list[uuid.UUID], catalogue: ports.RightsCatalogue
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(the sources with an HTTP connector, each connector part's starting outcome: its request, sealed). Inside
    the caller's transaction, under the subject's lock."""
    sources = sorted(k for k in catalogue.sources if http_connector(catalogue, k) is not None)
    if not sources or request.kind not in (RightsRequest.Kind.ACCESS, RightsRequest.Kind.ERASURE):
        return [], {}
    subject = Subject.objects.filter(pk=subject_ids[0]).first() if subject_ids else None
    if subject is None or subject.wrapped_key is None:
        return sources, {}  # nobody matched: each part completes with nothing asked
    identifiers = person_identifiers(subject_ids)
    key = data_key(subject)
    outcomes: dict[str, dict[str, Any]] = {}
    for source in sources:
        name = CONNECTOR_PART + source
        body = connector_body(request, subject_ids, source, identifiers, kind=request.kind)
        sealed = crypto.seal(key, json.dumps(body, separators=(",", ":")).encode(), _aad(request.pk, name, "body"))
        outcomes[name] = {"body": base64.b64encode(sealed).decode(), "attempts": 0}
    return sources, outcomes


def person_identifiers(subject_ids: list[uuid.UUID]) -> dict[str, list[str]]:
    """The person's identifiers by kind, of every subject of the group that still has a key, decrypted."""
    identifiers: dict[str, list[str]] = {}
    members = {s.pk: s for s in Subject.objects.filter(pk__in=subject_ids, wrapped_key__isnull=False)}
    keys = {pk: data_key(s) for pk, s in members.items()}
    for pk, owner, kind, blob in (
        Identifier.objects.filter(subject_id__in=list(members))
        .order_by("kind", "pk")
        .values_list("pk", "subject_id", "kind", "value_enc")
    ):
        value = decrypt_field(members[owner], keys[owner], IDENTIFIER_VALUE, bytes(blob), row_id=pk)
        if value not in identifiers.setdefault(kind, []):
            identifiers[kind].append(value)
    return identifiers


def connector_body(
    request: RightsRequest,
    subject_ids: list[uuid.UUID],
    source: str,
    identifiers: dict[str, list[str]],
    *,
    kind: str,
) -> dict[str, Any]:
    """What a system is sent for one request (API.md, Connectors), `kind` the request's or ERASURE_PLAN."""
    return {
        "request": str(request.pk),
        "kind": kind,
        "subject": str(subject_ids[0]),
        "identifiers": identifiers,
        "records": [
            {"external_id": e}
            for e in LinkedRecord.objects.filter(subject_id__in=subject_ids, source=source)
            .order_by("external_id")
            .values_list("external_id", flat=True)
        ],
        "part": CONNECTOR_PART + source,
    }


# ---------------------------------------------------------------------------------------------------------
# The part
# ---------------------------------------------------------------------------------------------------------
def retry_delay(failures: int) -> timedelta:
    base = settings.ASSENT_CONNECTOR_BACKOFF_SCALE
    nominal = (
        FIRST_DELAYS[failures - 1]
        if failures <= len(FIRST_DELAYS)
        else min(MAX_DELAY, FIRST_DELAYS[-1] * 2 ** (failures - len(FIRST_DELAYS)))
    )
    return timedelta(seconds=base * nominal * (0.8 + 0.4 * random.random()))


def connector_secret(connector: Mapping[str, Any]) -> str:
    secret = os.environ.get(str(connector.get("secret_env", "")), "")
    if not secret:
        raise ConnectorError(f"the environment variable {connector.get('secret_env')} holds no secret")
    return secret


def _answer_text(answer: ports.SystemAnswer) -> str:
    if answer.status is None:
        return answer.error or "no answer"
    text = answer.body[:200].decode("utf-8", "replace")
    return f"HTTP {answer.status}" + (f": {text}" if text else "")


def connector_part(context: PartContext) -> None:
    source = context.name.removeprefix(CONNECTOR_PART)
    connector = http_connector(ports.consent_rights.catalogue(), source)
    if connector is None:
        raise ConnectorError(f"the catalogue names no HTTP connector for source '{source}' any more")
    outcome = dict(context.outcome)
    if "body" not in outcome and "answer" not in outcome:
        with context.step() as saved:  # nobody matched: nothing to ask the system
            saved.update(asked=False)
            context.mark_done()
        return
    key = context.data_key()
    if "answer" in outcome:  # a signed callback brought it
        sealed = base64.b64decode(outcome["answer"])
        opened = crypto.open_sealed(key, sealed, _aad(context.request.id, context.name, "answer"))
        _complete(context, json.loads(opened))
        return
    body = crypto.open_sealed(key, base64.b64decode(outcome["body"]), _aad(context.request.id, context.name, "body"))
    attempts = int(outcome.get("attempts", 0)) + 1
    answer = ports.connector_transport.post(
        url=str(connector["url"]),
        secret=connector_secret(connector),
        msg_id=f"part_{context.part_id}_{attempts}",
        body=body,
    )
    now = timezone.now()
    outcome.update(attempts=attempts, last_attempt_at=now.isoformat(), last_answer=_answer_text(answer)[:MAX_ERROR])
    if answer.status == 200:
        payload: Any = None
        with contextlib.suppress(ValueError):
            payload = json.loads(answer.body)
        if isinstance(payload, dict):
            _complete(context, payload)
            return
        outcome["last_answer"] = "HTTP 200 with a body that is not a JSON object"
    elif answer.status == 202:
        outcome["waiting_since"] = now.isoformat()
        raise PartWaitError(now + timedelta(seconds=settings.ASSENT_CONNECTOR_CALLBACK_SECONDS), outcome)
    if attempts >= settings.ASSENT_CONNECTOR_ATTEMPTS:
        raise ConnectorError(f"{source}: no success after {attempts} attempts; last answer: {outcome['last_answer']}")
    raise PartWaitError(now + retry_delay(attempts), outcome)


def _complete(context: PartContext, payload: dict[str, Any]) -> None:
    """The system's answer: its data as a sealed piece of the export (access), or what it erased and kept."""
    source = context.name.removeprefix(CONNECTOR_PART)
    if context.request.kind == RightsRequest.Kind.ERASURE:
        result = erasure_result(source, payload)
        with context.step() as outcome:
            outcome.clear()
            outcome.update(asked=True, **result)
            context.mark_done()
        return
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ConnectorError(f"{source}: the answer holds no 'data' object")
    kid, root = blob_root(context.subject(), "")
    piece = piece_name(context.name, context.token)
    with sealed_writer(
        part_path(context.request.id, piece),
        root=root,
        blob_id=context.request.id,
        label=context.name,
        temp=context.token.hex,
    ) as writer:
        writer.write(json.dumps({"system": source, "data": data}, ensure_ascii=False, default=str).encode() + b"\n")
    with context.step(read_only=True) as outcome:
        outcome.clear()
        outcome.update(asked=True, kid=kid, piece=piece)
        context.mark_done()


def erasure_result(source: str, payload: dict[str, Any]) -> dict[str, Any]:
    erased, kept = payload.get("erased", []), payload.get("kept", [])
    if not isinstance(erased, list) or not isinstance(kept, list):
        raise ConnectorError(f"{source}: 'erased' and 'kept' must be lists")
    items = []
    for item in kept:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str | None) for k in ("what", "why", "until")):
            raise ConnectorError(f"{source}: each 'kept' item is an object of 'what', 'why' and 'until'")
        items.append({k: item.get(k) for k in ("what", "why", "until")})
    return {"erased": [str(e)[:500] for e in erased][:10_000], "kept": items[:10_000]}


# ---------------------------------------------------------------------------------------------------------
# The callback: POST /api/v1/requests/{id}/parts/{part}/result, signed with the connector's secret
# ---------------------------------------------------------------------------------------------------------
def connector_callback(*, request_id: uuid.UUID, part: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Verify the signature, keep the answer sealed in the part's outcome and run the part again at once."""
    row = (
        Part.objects.select_related("request")
        .filter(request_id=request_id, name=part, name__startswith=CONNECTOR_PART)
        .first()
    )
    connector = (
        http_connector(ports.consent_rights.catalogue(), part.removeprefix(CONNECTOR_PART)) if row is not None else None
    )
    if row is None or connector is None:
        raise RequestNotFoundError("no such part of a request waits for a system")
    try:
        payload = Webhook(connector_secret(connector)).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError, TypeError):
        raise ConnectorSignatureError("the signature does not verify with this connector's secret") from None
    if not isinstance(payload, dict):
        raise ConnectorSignatureError("the body is not a JSON object")
    with transaction.atomic(durable=True):
        request = row.request
        if request.subject_id:
            lock_subjects([request.subject_id])
        request = RightsRequest.objects.select_for_update().get(pk=request.pk)
        current = Part.objects.select_for_update().get(pk=row.pk)
        if request.status != RightsRequest.Status.PROCESSING or current.status not in (
            Part.Status.PENDING,
            Part.Status.RUNNING,
        ):
            raise RequestStateError("this part is not waiting for an answer")
        subject = Subject.objects.filter(pk=request.subject_id).first() if request.subject_id else None
        if subject is None or subject.wrapped_key is None:
            raise RequestStateError("this part is not waiting for an answer")
        sealed = crypto.seal(data_key(subject), json.dumps(payload).encode(), _aad(request.pk, part, "answer"))
        outcome = {**current.outcome, "answer": base64.b64encode(sealed).decode(), "answered_at": _iso_now()}
        Part.objects.filter(pk=row.pk).update(
            outcome=outcome, status=Part.Status.PENDING, lease_token=None, claimed_until=None
        )
        enqueue_on_commit(RUN_PART, str(row.pk))


def _iso_now() -> str:
    now: datetime = timezone.now()
    return now.isoformat()
