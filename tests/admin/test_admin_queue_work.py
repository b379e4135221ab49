"""Queue work on rights requests (issue 14, item 9) and the request's result as a report (item 8): assigning a
request to a staff member, internal notes that stay with the staff, the person named by a masked e-mail address,
readable results, and labels in the staff member's language."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.models import AuditEntry
from subjects.models import RequestNote, RightsRequest
from tests.admin.test_admin_queue import make, open_request
from tests.api import Api
from tests.factories import ingest

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
DE = {"HTTP_ACCEPT_LANGUAGE": "de"}
LIST = "/admin/subjects/rightsrequest/"


def page_of(client: Client, request: RightsRequest, **headers: Any) -> str:
    return client.get(f"{LIST}{request.pk}/change/", **{**EN, **headers}).content.decode()


def assign(client: Client, request: RightsRequest, assignee: object) -> Any:
    return client.post(f"{LIST}{request.pk}/assign/", {"assignee": str(assignee)})


def note(client: Client, request: RightsRequest, text: str) -> Any:
    return client.post(f"{LIST}{request.pk}/note/", {"text": text})


def listed(client: Client, query: str) -> set[str]:
    return {str(r.pk) for r in client.get(f"{LIST}?{query}", **EN).context["cl"].result_list}


# ---------------------------------------------------------------------------------------------------------
# Assigning
# ---------------------------------------------------------------------------------------------------------
def test_the_dpo_assigns_a_request_and_the_assignee_finds_it_under_assigned_to_me(
    dpo: Client, support: Client, anna: str
) -> None:
    mine = make("received")
    other = make("verified")
    helper = support.user  # type: ignore[attr-defined]

    response = assign(dpo, mine, helper.pk)

    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.assigned_to_id == helper.pk
    assert f'<option value="{helper.pk}" selected>{helper.get_username()}</option>' in page_of(dpo, mine)
    assert listed(support, "assignee=me") == {str(mine.pk)}
    assert listed(dpo, "assignee=me") == set()
    assert listed(dpo, f"assignee={helper.pk}") == {str(mine.pk)}
    assert listed(dpo, "assignee=nobody") == {str(other.pk)}
    assert helper.get_username() in dpo.get(LIST, **EN).content.decode()
    entry = AuditEntry.objects.get(object_id=str(mine.pk), detail=f"assign to user {helper.pk}")
    assert entry.username == dpo.user.get_username()  # type: ignore[attr-defined]


def test_a_request_is_unassigned_by_choosing_nobody(dpo: Client, anna: str) -> None:
    request = make("received", assigned_to=dpo.user)  # type: ignore[attr-defined]

    assign(dpo, request, "")

    request.refresh_from_db()
    assert request.assigned_to_id is None
    assert AuditEntry.objects.filter(object_id=str(request.pk), detail="assign to nobody").exists()


def test_a_request_is_assigned_to_active_staff_only(dpo: Client, django_user_model: Any, anna: str) -> None:
    customer = django_user_model.objects.create_user(username="not-staff", password="x" * 20)
    request = make("received")

    for wrong in (customer.pk, 999_999, "someone"):
        response = dpo.post(f"{LIST}{request.pk}/assign/", {"assignee": str(wrong)}, follow=True, **EN)
        assert response.status_code == 200
        request.refresh_from_db()
        assert request.assigned_to_id is None, wrong
    assert "staff" in response.content.decode()


def test_support_may_not_assign(support: Client, anna: str) -> None:
    request = make("received")

    assert assign(support, request, support.user.pk).status_code == 403  # type: ignore[attr-defined]
    request.refresh_from_db()
    assert request.assigned_to_id is None
    assert 'name="assignee"' not in page_of(support, request)


# ---------------------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------------------
def test_staff_add_internal_notes_that_the_api_never_shows(dpo: Client, support: Client, api: Api, anna: str) -> None:
    open_request(dpo, verified="on")
    request = RightsRequest.objects.get()

    assert note(support, request, "Called back on Tuesday: she wants the till receipts too.").status_code == 302
    assert note(dpo, request, "Receipts are in the POS export.").status_code == 302

    shown = page_of(dpo, request)
    assert shown.index("Called back on Tuesday") < shown.index("Receipts are in the POS export.")
    assert support.user.get_username() in shown  # type: ignore[attr-defined]
    assert RequestNote.objects.filter(request=request).count() == 2
    assert AuditEntry.objects.filter(action="add", object_type="subjects.requestnote").count() == 2
    body = api.get(f"/api/v1/requests/{request.pk}")
    assert body.status_code == 200, body.content
    assert "Called back" not in body.content.decode()
    assert "Receipts are in the POS" not in body.content.decode()


def test_an_empty_or_overlong_note_is_refused_with_a_message(dpo: Client, anna: str) -> None:
    request = make("received")

    for text in ("   ", "x" * 4001):
        response = dpo.post(f"{LIST}{request.pk}/note/", {"text": text}, follow=True, **EN)
        assert response.status_code == 200
        assert "A note needs some text" in response.content.decode()
    assert not RequestNote.objects.exists()


def test_a_note_or_assignment_cannot_be_made_with_a_get_or_for_a_missing_request(dpo: Client, anna: str) -> None:
    request = make("received")

    assert dpo.get(f"{LIST}{request.pk}/note/").status_code == 403
    assert dpo.get(f"{LIST}{request.pk}/assign/").status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert dpo.post(f"{LIST}{missing}/note/", {"text": "x"}).status_code == 403
    assert dpo.post(f"{LIST}{missing}/assign/", {"assignee": ""}).status_code == 403


# ---------------------------------------------------------------------------------------------------------
# The person in the list: a masked address, never the full value
# ---------------------------------------------------------------------------------------------------------
def test_the_queue_names_the_person_by_a_masked_address(dpo: Client, anna: str) -> None:
    request = make("received", subject_id=anna)
    nobody = make("received")

    listing = dpo.get(LIST, **EN).content.decode()
    detail = page_of(dpo, request)

    assert "A•••@Example.org" in listing or "a•••@example.org" in listing
    assert "anna.becker" not in listing.lower()
    assert "anna.becker" not in detail.lower()
    assert "(nobody matched)" in listing
    assert str(nobody.pk) in listing


def test_the_queue_reads_the_masked_addresses_in_a_fixed_number_of_queries(dpo: Client, anna: str) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert dpo.get(LIST, **EN).status_code == 200
        return len(captured.captured_queries)

    make("received", subject_id=anna)
    one = queries()
    for n in range(5):
        person = ingest("pos", f"R-q{n}", {"email": f"person{n}@example.org"}).subject_id
        make("received", subject_id=person)
    assert queries() == one


# ---------------------------------------------------------------------------------------------------------
# The result, readable
# ---------------------------------------------------------------------------------------------------------
ERASURE_RESULT = {
    "data_found": True,
    "message": "Your data was erased.",
    "erased_at": "2026-11-20T10:00:00+00:00",
    "sources": [
        {
            "source": "pos",
            "name": "Till system",
            "deleted": 3,
            "kept": [{"category": "receipts", "count": 2, "where": "retention store", "why": "§147 AO"}],
        }
    ],
    "systems": [{"source": "crm", "name": "CRM", "asked": True, "erased": ["contact"], "kept": []}],
    "profile": {"identifiers_deleted": 2, "profile_deleted": True},
    "consent": {"events_moved": 4, "logs_deleted": 7},
    "kept": [
        {
            "source": "pos",
            "category": "receipts",
            "count": 2,
            "where": "Assent's restricted retention store",
            "why": "§147 AO: tax records",
            "until": "2036-12-31",
            "instruction": "kept restricted by Assent, purged on the end date",
        }
    ],
    "recipients": [
        {"name": "Newsletter tool", "kind": "client", "purposes": ["newsletter"], "count": 12, "first_at": None}
    ],
    "recipients_note": "Art. 19: these recipients received the person's data.",
    "suppressed_identifiers": 1,
    "data_key_destroyed": True,
}


def test_an_erasure_result_reads_as_a_report_with_the_raw_json_for_auditors(dpo: Client, anna: str) -> None:
    request = make("completed", kind="erasure", completed_at=timezone.now(), result=ERASURE_RESULT)

    shown = page_of(dpo, request)

    report = shown[shown.index('id="request-result"') : shown.index('id="request-result-raw"')]
    for text in ("Till system", "CRM", "§147 AO: tax records", "2036", "Newsletter tool", "records deleted"):
        assert text in report, text
    assert "&quot;sources&quot;" not in report  # no JSON in the report itself
    raw = shown[shown.index('id="request-result-raw"') :]
    assert "<details" in shown
    assert "&quot;erased_at&quot;" in raw


def test_a_rectification_result_says_what_changed(dpo: Client, anna: str) -> None:
    result = {
        "data_found": True,
        "message": "Corrected.",
        "rectified": {"identifiers": ["email"], "profile": ["birthday"]},
        "recipients": [],
    }
    request = make("completed", kind="rectification", completed_at=timezone.now(), result=result)

    report = page_of(dpo, request)

    assert 'id="result-changes"' in report
    assert "profile fields corrected" in report
    assert "birthday" in report


def test_an_access_result_shows_the_export_and_its_counts(dpo: Client, anna: str) -> None:
    expires = (timezone.now() + timedelta(days=5)).isoformat()
    result = {
        "data_found": True,
        "message": "Your export is ready.",
        "export": {"size": 2048, "files": ["data.json", "report.de.html"], "expires_at": expires},
        "summary": {"records": 5, "categories": ["purchases"], "sources": ["pos"], "identifiers": 2},
    }
    request = make("completed", kind="access", completed_at=timezone.now(), result=result)

    report = page_of(dpo, request)

    assert 'id="result-export"' in report
    assert f"/api/v1/requests/{request.pk}/export?token=" in report
    assert "report.de.html" in report
    assert "purchases" in report


# ---------------------------------------------------------------------------------------------------------
# Labels in the staff member's language
# ---------------------------------------------------------------------------------------------------------
def test_statuses_kinds_and_names_read_as_words_in_english_and_german(dpo: Client, anna: str) -> None:
    request = make("awaiting_approval", kind="erasure")

    english = page_of(dpo, request, **EN)
    german = page_of(dpo, request, **DE)
    index_en = dpo.get("/admin/", **EN).content.decode()
    index_de = dpo.get("/admin/", **DE).content.decode()
    purposes_en = dpo.get("/admin/consent/purpose/add/", **EN).content.decode()
    open_de = dpo.get(f"{LIST}add/", **DE).content.decode()

    assert "Awaiting approval" in english
    assert "awaiting_approval</td>" not in english
    assert "Erasure (Art. 17)" in english
    assert "Wartet auf Freigabe" in german
    assert "Löschung (Art. 17)" in german
    assert "Löschung freigeben" in german
    assert "Interne Notizen" in german
    for words in ("API clients", "Two-factor devices"):
        assert words in index_en, words
    for bad in ("Api clients", "OTP_TOTP", "Otp_Totp"):
        assert bad not in index_en, bad
    for words in ("API-Clients", "Zwei-Faktor-Geräte", "Anträge"):
        assert words in index_de, words
    for bad in ("Uwg 7 3", "Gpc", "Dpv"):
        assert bad not in purposes_en, bad
    assert "Antrag anlegen" in open_de
    assert "die Person, anhand" in open_de
