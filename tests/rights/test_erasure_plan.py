"""The plan of an erasure, shown to the DPO before approving (issue 13, item 5; issue 14, item 8): for Assent and
every connected system, what will be deleted and what kept, where, why and until when, and nothing changes by
looking. Approving asks that the plan was read, on the request's page and in the bulk action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.models import ConsentEvent
from subjects.models import Identifier, LinkedRecord, RightsRequest
from subjects.rights.erasure_plan import ERASURE_PLAN, erasure_plan
from tests.admin import conftest as admin_fixtures
from tests.api import Api
from tests.rights import test_connector_postgresql as postgresql_fixtures
from tests.rights import test_connectors as http_fixtures
from tests.rights.helpers import drain, seed_person
from tests.rights.test_connectors import Crm
from tests.subjects.connectors.shop import HOLD_LAW, dump

REQUESTS = "/api/v1/requests"
# The fixtures of the admin's, the shop database's and the CRM's tests, found by pytest under these names.
staff_groups = admin_fixtures.staff_groups
make_staff = admin_fixtures.make_staff
shop_dsn = postgresql_fixtures.shop_dsn
crm = http_fixtures.crm
pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]], rights_catalogue: dict[str, Any]) -> Client:
    return admin_fixtures.speaking(admin_fixtures._signed_in(make_staff, "DPO"), "en")


def awaiting(api: Api, email: str) -> RightsRequest:
    body = api.post(REQUESTS, {"kind": "erasure", "subject": {"email": email}, "channel": "portal", "verified": True})
    assert body.json()["status"] == "awaiting_approval", body.content
    return RightsRequest.objects.get(pk=body.json()["id"])


def page(client: Client, request: RightsRequest) -> str:
    # In English: the admin follows the staff member's language, German unless the browser asks otherwise.
    response = client.get(f"/admin/subjects/rightsrequest/{request.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def approve(client: Client, request: RightsRequest, **data: str) -> str:
    response = client.post(f"/admin/subjects/rightsrequest/{request.pk}/step/approve/", data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def what_assent_holds(request: RightsRequest) -> tuple[int, int, int]:
    ids = [request.subject_id]
    return (
        LinkedRecord.objects.filter(subject_id__in=ids).count(),
        Identifier.objects.filter(subject_id__in=ids).count(),
        ConsentEvent.objects.filter(subject_id__in=ids).count(),
    )


# ---------------------------------------------------------------------------------------------------------
# Assent's own side
# ---------------------------------------------------------------------------------------------------------
def test_the_dpo_sees_what_goes_and_what_stays_before_approving(rapi: Api, dpo: Client) -> None:
    person = seed_person("plan1", records_per_source=2)
    request = awaiting(rapi, person.email)
    holds = what_assent_holds(request)

    html = page(dpo, request)

    assert "Plan of the erasure" in html
    assert "I have read the plan of this erasure." in html
    with translation.override("en"):  # the plan speaks the language of the page that shows it
        plan = erasure_plan(request=request)
    assent = plan.systems[0]
    assert assent.name == "Assent"
    # every linked record is either deleted or kept, never both, never forgotten
    deleted_records = sum(int(line.split()[0]) for line in assent.deleted if "linked record" in line)
    kept_records = sum(k.count or 0 for k in assent.kept if k.where.startswith("Assent's restricted retention"))
    assert deleted_records + kept_records == holds[0]
    assert any("identifiers (" in line for line in assent.deleted)
    # what the law keeps says why and until when
    for kept in assent.kept:
        assert kept.why
        assert kept.where
    retained = [k for k in assent.kept if k.where.startswith("Assent's restricted retention")]
    assert retained
    assert all(k.until for k in retained)
    assert retained[0].why in html
    assert retained[0].until in html
    # nothing changed by looking
    assert what_assent_holds(request) == holds


def test_approving_without_ticking_the_plan_approves_nothing(rapi: Api, dpo: Client) -> None:
    person = seed_person("plan2", records_per_source=1)
    request = awaiting(rapi, person.email)

    html = approve(dpo, request)

    assert "tick that you have read the plan" in html
    request.refresh_from_db()
    assert request.status == "awaiting_approval"

    approve(dpo, request, plan_seen="1")

    request.refresh_from_db()
    assert request.status == "processing"


def test_the_bulk_approval_shows_every_plan_first(rapi: Api, dpo: Client) -> None:
    first = awaiting(rapi, seed_person("plan3", records_per_source=1).email)
    second = awaiting(rapi, seed_person("plan4", records_per_source=1).email)
    selected = {"action": "approve_selected", "_selected_action": [str(first.pk), str(second.pk)]}

    shown = dpo.post("/admin/subjects/rightsrequest/", {**selected, "index": "0"})

    assert shown.status_code == 200
    html = shown.content.decode()
    assert html.count('class="assent-plan"') == 2
    assert "Approve 2 erasures" in html
    assert set(RightsRequest.objects.values_list("status", flat=True)) == {"awaiting_approval"}

    done = dpo.post("/admin/subjects/rightsrequest/", {**selected, "post": "yes", "plan_seen": "1"})

    assert done.status_code == 302
    assert set(RightsRequest.objects.values_list("status", flat=True)) == {"processing"}


# ---------------------------------------------------------------------------------------------------------
# In the staff member's language
# ---------------------------------------------------------------------------------------------------------
ENGLISH_SENTENCES = (
    "linked record",
    "Assent's copy",
    "the source system",
    "suppression list",
    "the person's data key",
    "restricted retention store",
    "erasure waits for approval",
    "channel phone",
    "source:",
    "kept restricted by Assent",
    "The personal data was erased",
    "these recipients received",
)


def german_page(client: Client, request: RightsRequest) -> str:
    response = client.get(f"/admin/subjects/rightsrequest/{request.pk}/change/", HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 200
    html = response.content.decode()
    html = html.split('id="request-result-raw"')[0]  # the raw JSON for auditors keeps the stored English
    return html.replace("&#x27;", "'")


def test_a_german_dpo_reads_the_plan_and_the_result_in_german(rapi: Api, dpo: Client) -> None:
    person = seed_person("plan-de", records_per_source=2)
    body = rapi.post(REQUESTS, {"kind": "erasure", "subject": {"email": person.email}, "channel": "phone"})
    request = RightsRequest.objects.get(pk=body.json()["id"])
    rapi.post(f"{REQUESTS}/{request.pk}/verify", {})
    request.refresh_from_db()
    assert request.status == "awaiting_approval"
    dpo.cookies.pop("django_language", None)
    admin_fixtures.speaking(dpo, "de")

    planned = german_page(dpo, request)

    assert "verknüpfte Datensätze aus" in planned
    assert "der Datenschlüssel der Person" in planned
    assert "gesperrter Aufbewahrungsspeicher in Assent" in planned
    assert "Löschung wartet auf Freigabe" in planned
    assert "Kanal: Telefon" in planned
    for english in ENGLISH_SENTENCES:
        assert english not in planned, english

    approve(dpo, request, plan_seen="1")
    drain(str(request.pk))
    done = german_page(dpo, request)

    assert "Die personenbezogenen Daten wurden gelöscht" in done
    assert "von Assent gesperrt aufbewahrt, am Enddatum gelöscht" in done
    assert "Quelle: " in done
    for english in ENGLISH_SENTENCES:
        assert english not in done, english


# ---------------------------------------------------------------------------------------------------------
# Connected systems
# ---------------------------------------------------------------------------------------------------------
def test_the_shop_database_is_planned_by_a_dry_run_that_changes_nothing(rapi: Api, dpo: Client, shop_dsn: str) -> None:
    person = seed_person("plan5", records_per_source=1)
    postgresql_fixtures._customers(shop_dsn, person.email, "someone.else@example.de")
    before = dump(shop_dsn)
    request = awaiting(rapi, person.email)

    html = page(dpo, request)

    with translation.override("en"):
        shop = next(s for s in erasure_plan(request=request).systems if s.name == "Shop database")
    assert shop.kind == "postgresql"
    assert not shop.problem
    assert "payment_card: 1 row (deleted)" in shop.deleted
    assert [(k.what, k.why) for k in shop.kept] == [("invoice: 2 rows", HOLD_LAW)]
    assert shop.kept[0].until
    assert "Shop database (connected database, dry run)" in html
    assert HOLD_LAW in html
    assert dump(shop_dsn) == before


def test_a_shop_database_that_is_away_is_shown_as_a_problem_not_an_error(
    rapi: Api,
    dpo: Client,
    shop_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = seed_person("plan6", records_per_source=1)
    request = awaiting(rapi, person.email)
    monkeypatch.setenv("ASSENT_SHOP_DSN", shop_dsn.replace("/assent_", "/no_such_database_"))

    html = page(dpo, request)

    assert "No plan:" in html
    assert "the dry run failed" in html


def test_an_http_system_is_asked_for_its_plan_with_a_kind_it_cannot_mistake(rapi: Api, dpo: Client, crm: Crm) -> None:
    person = seed_person("plan7", records_per_source=1)
    crm.answers = [
        (
            200,
            {
                "erased": ["contact card", "call notes: 3"],
                "kept": [{"what": "contract", "why": "§257 HGB", "until": "2033-12-31"}],
            },
        )
    ]
    request = awaiting(rapi, person.email)

    html = page(dpo, request)

    assert [r["kind"] for r in crm.received] == [ERASURE_PLAN]  # signed: the receiver verified it
    assert crm.received[0]["identifiers"]["email"] == [person.email]
    assert "call notes: 3" in html
    assert "§257 HGB" in html
    assert "2033-12-31" in html
    request.refresh_from_db()
    assert request.status == "awaiting_approval"


def test_an_http_system_without_a_plan_is_named_with_what_it_will_be_asked(rapi: Api, dpo: Client, crm: Crm) -> None:
    person = seed_person("plan8", records_per_source=1)
    crm.answers = [(400, "unknown kind")]
    request = awaiting(rapi, person.email)

    html = page(dpo, request)

    assert "the system gave no plan (HTTP 400)" in html
    assert "it will be asked to erase the person" in html


# ---------------------------------------------------------------------------------------------------------
# The request page while a connected system works
# ---------------------------------------------------------------------------------------------------------
def test_a_part_waiting_for_the_systems_callback_says_so_on_the_request_page(rapi: Api, dpo: Client, crm: Crm) -> None:
    person = seed_person("plan9", records_per_source=1)
    crm.answers = [(202, "")]
    body = rapi.post(
        REQUESTS, {"kind": "access", "subject": {"email": person.email}, "channel": "portal", "verified": True}
    )
    request = RightsRequest.objects.get(pk=body.json()["id"])
    drain(str(request.pk))

    html = page(dpo, request)

    assert "Running: waiting for the system&#x27;s callback since" in html


def test_a_part_that_will_retry_shows_the_systems_last_answer(rapi: Api, dpo: Client, crm: Crm, settings: Any) -> None:
    person = seed_person("plan10", records_per_source=1)
    crm.answers = [(503, "maintenance until 6 pm")]
    settings.ASSENT_CONNECTOR_BACKOFF_SCALE = 100.0  # the next attempt minutes away: the page shows the wait
    body = rapi.post(
        REQUESTS, {"kind": "access", "subject": {"email": person.email}, "channel": "portal", "verified": True}
    )
    request = RightsRequest.objects.get(pk=body.json()["id"])
    drain(str(request.pk))

    html = page(dpo, request)

    assert "attempt 1 failed, next attempt at " in html
    assert "last answer: HTTP 503: maintenance until 6 pm" in html
