"""What every erasure test asserts: nothing of the person is left in any table of consent and subjects but what
KEPT_BY_DESIGN names, and no value of theirs in clear anywhere; and the person with data everywhere those tests
erase."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connection, models

from consent.models import EvidenceArchive
from subjects.models import (
    ErasureLog,
    RetainedRecord,
    RightsRequest,
    RightsRequestEvent,
    RightsRequestPart,
    Subject,
    VaultKey,
)
from tests.api import Api
from tests.rights.helpers import Person, records_bulk, seed_person

# The models that by design keep something of an erased person, and what: nothing else may keep a row of theirs,
# nor their subject id or any of their values anywhere in a row.
KEPT_BY_DESIGN: dict[type[models.Model], str] = {
    Subject: "the tombstone: id, status and erased_at, with no key and no profile (asserted below)",
    RightsRequest: "the requests, to account for how each right was handled (Art. 5(2)); no details (asserted below)",
    RightsRequestPart: "the parts of those requests: counts and states, no values",
    RightsRequestEvent: "the history of those requests: who did what when, no values",
    VaultKey: "the keys of the restricted stores below, one per person and purpose",
    RetainedRecord: "records a law makes the controller keep (§147 AO, §14b UStG), restricted under their own key",
    EvidenceArchive: "the consent proof, restricted under its own key while claims can be raised (§§195, 199 BGB)",
    ErasureLog: "who was erased when, with no personal data: replayed after a backup restore (Art. 17)",
}


def _subject_lookups(model: type[models.Model]) -> list[str]:
    """The lookups that find a subject's rows: a foreign key to Subject, a subject id kept without a foreign key
    (`subject_id`, `related_subject`), or a rights request of the subject."""
    lookups = []
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is Subject:
            lookups.append(f"{field.name}__in")
        elif field.is_relation and field.related_model is RightsRequest:
            lookups.append(f"{field.name}__subject__in")
        elif isinstance(field, models.UUIDField) and "subject" in field.name:
            lookups.append(f"{field.name}__in")
    return lookups


def _rows_holding(model: type[models.Model], needle: str) -> int:
    """Rows of the model's table whose text holds `needle`. The whole row as text: bytea shows as hex, so only a
    value stored in clear can match."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} AS t WHERE strpos(lower(t::text), lower(%s)) > 0", [needle])
        count: int = cursor.fetchone()[0]
    return count


def assert_gone_from_every_table(person: Person, group: list[Any]) -> None:
    """Every model of consent and subjects: no row of the person's (but where KEPT_BY_DESIGN says why), and no row
    anywhere that holds one of their values in clear or (outside KEPT_BY_DESIGN) their subject id."""
    covered = [m for m in apps.get_models() if m._meta.app_label in ("consent", "subjects")]
    assert {m._meta.app_label for m in covered} == {"consent", "subjects"}
    ids = [str(subject_id) for subject_id in group]
    for model in covered:
        for secret in person.secrets:
            assert not _rows_holding(model, secret), f"{model.__name__} holds {secret!r} in clear"
        if model in KEPT_BY_DESIGN:
            continue
        for lookup in _subject_lookups(model):
            assert not model.objects.filter(**{lookup: group}).exists(), f"{model.__name__}.{lookup} keeps a row"
        for subject_id in ids:
            assert not _rows_holding(model, subject_id), f"{model.__name__} names the subject {subject_id}"
    tombstones = Subject.objects.filter(pk__in=group)
    assert not tombstones.filter(models.Q(wrapped_key__isnull=False) | models.Q(profile_enc__isnull=False)).exists()
    assert not RightsRequest.objects.filter(subject__in=group, details_enc__isnull=False).exists()


def busy_person(api: Api, tag: str) -> Person:
    person = seed_person(tag, records_per_source=2)
    # orders from 2024 in the web shop (system of record) and till receipts: both under a legal hold
    records_bulk(person.subject_id, "shop", "orders", 3, tag + "-old")
    response = api.post(
        "/api/v1/consents",
        {
            "subject": {"email": person.email},
            "purpose": "phone-offers",
            "channel": "phone",
            "action": "grant",
            "notice_version": "1",
            "source": "callcenter",
            "evidence": {"call": f"call-{tag}"},
        },
        headers={"Idempotency-Key": f"key-{tag}"},
    )
    assert response.status_code == 201, response.content
    assert (
        api.post(
            "/api/v1/consents",
            {"subject": {"email": person.email}, "purpose": "offers", "action": "object", "source": "webshop"},
        ).status_code
        == 201
    )
    assert api.get(f"/api/v1/subjects/{person.subject_id}/profile?purpose=order-updates").status_code == 200
    assert (
        api.post(
            "/api/v1/sends",
            {"campaign": "c", "purpose": "phone-offers", "channel": "phone", "recipients": [{"email": person.email}]},
        ).status_code
        == 201
    )
    return person
