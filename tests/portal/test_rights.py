"""Rights from the portal: verified by the sign-in (Art. 12(6)), so a copy starts at once; erasure after a step that
says what is kept, where and why; correction, restriction, objection; each with its status and due date. One
person never reaches another's requests or exports."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from typing import Any

import pytest
from django.test import Client

from subjects.models import RightsRequest, Subject
from tests.factories import ingest
from tests.portal.conftest import csrf, known_person, post_form, sign_in
from tests.rights.helpers import drain, recorded_at

pytestmark = pytest.mark.usefixtures("portal")


def customer(email: str) -> uuid.UUID:
    """A till customer: a contact record and a purchase that the law makes the till system keep (§147 AO)."""
    identifiers = {"email": email, "phone": "+491715550101"}
    contact = {"name": "Anna Becker"}
    ingest(
        "pos",
        f"contact-{email}",
        identifiers,
        category="contact",
        data=contact,
        occurred_at=recorded_at(),
        profile=True,
    )
    receipt = {"total": "19.99"}
    return ingest(
        "pos", f"receipt-{email}", {"email": email}, data=receipt, occurred_at=recorded_at(), purchase=True
    ).subject_id


def without_csrf(response: Any) -> str:
    return re.sub(r'value="[A-Za-z0-9]{64}"', "", response.content.decode())


def open_copy(client: Client, kind: str = "access") -> Any:
    return client.post("/portal/rights/copy", {"kind": kind, "csrfmiddlewaretoken": csrf(client.get("/portal/rights"))})


def request_id_of(response: Any) -> str:
    assert response.status_code == 302, response.content.decode()[:500]
    match = re.fullmatch(r"/portal/rights/([0-9a-f-]{36})", response["Location"])
    assert match, response["Location"]
    return match.group(1)


def test_a_copy_is_verified_by_the_sign_in_and_starts_at_once() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")

    request_id = request_id_of(open_copy(client))

    request = RightsRequest.objects.get(pk=request_id)
    assert request.kind == "access"
    assert request.status == "processing"
    assert request.verified_by == "portal:email-link"
    assert request.channel == "portal"
    html = client.get(f"/portal/rights/{request_id}").content.decode()
    assert "In Bearbeitung" in html
    assert "Frist bis" in html
    listing = client.get("/portal/rights").content.decode()
    assert f"/portal/rights/{request_id}" in listing
    assert "Kopie meiner Daten" in listing


def test_the_finished_copy_downloads_as_a_zip_for_its_person_only() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    request_id = request_id_of(open_copy(client))
    assert drain(request_id).status == "completed"

    html = client.get(f"/portal/rights/{request_id}").content.decode()
    assert f"/portal/rights/{request_id}/export" in html
    download = client.get(f"/portal/rights/{request_id}/export")

    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "Anna Becker" in "".join(archive.read(name).decode(errors="ignore") for name in archive.namelist())

    # another signed-in person gets the same page as for an id that does not exist: nothing is revealed
    customer("ben@example.de")
    ben = sign_in("ben@example.de")
    for path in (f"/portal/rights/{request_id}/export", f"/portal/rights/{request_id}"):
        theirs = ben.get(path)
        unknown = ben.get(path.replace(request_id, str(uuid.uuid4())))
        assert theirs.status_code == unknown.status_code == 404
        assert without_csrf(theirs) == without_csrf(unknown)
        assert b"Anna" not in theirs.content


def test_a_garbled_request_id_is_a_clear_page() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    response = client.get("/portal/rights/not-a-uuid")
    assert response.status_code == 404
    assert "finden wir in Ihrem Datenschutz-Center nicht" in response.content.decode()


def test_the_same_copy_asked_for_twice_opens_one_request() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    first = request_id_of(open_copy(client))

    second = open_copy(client)

    assert second.status_code == 409
    assert f"/portal/rights/{first}" in second.content.decode()
    assert RightsRequest.objects.count() == 1


def test_portability_is_offered_too() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    request_id = request_id_of(open_copy(client, "portability"))
    assert RightsRequest.objects.get(pk=request_id).kind == "portability"


def test_erasure_first_says_what_is_kept_where_and_why() -> None:
    customer("anna@example.de")
    known_person("anna@example.de")
    client = sign_in("anna@example.de")

    html = client.get("/portal/rights/erasure").content.decode()

    assert "Store tills" in html
    assert "§147 AO, §257 HGB" in html
    assert "8 Jahre ab Ende des Jahres" in html
    assert "§§ 195, 199 BGB" in html
    assert RightsRequest.objects.count() == 0


def test_erasure_needs_the_confirmation_box_and_then_waits_for_approval() -> None:
    subject_id = customer("anna@example.de")
    client = sign_in("anna@example.de")

    unconfirmed = post_form(client, "/portal/rights/erasure", {})
    assert unconfirmed.status_code == 400
    assert RightsRequest.objects.count() == 0

    request_id = request_id_of(post_form(client, "/portal/rights/erasure", {"confirm": "on"}))
    request = RightsRequest.objects.get(pk=request_id)
    assert (request.kind, request.status, request.subject_id) == ("erasure", "awaiting_approval", subject_id)
    html = client.get(f"/portal/rights/{request_id}").content.decode()
    assert "Wartet auf Freigabe durch unser Datenschutzteam" in html


def test_correcting_contact_data_opens_a_rectification_with_only_what_changed() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    form = client.get("/portal/rights/rectification").content.decode()
    assert "+491715550101" in form
    assert "Anna Becker" in form

    same = {"phone": "+491715550101", "profile:name": "Anna Becker"}
    unchanged = post_form(client, "/portal/rights/rectification", same)
    assert unchanged.status_code == 400
    assert "nichts geändert" in unchanged.content.decode()

    done = post_form(client, "/portal/rights/rectification", {"phone": "+491715550101", "profile:name": "Anna B."})
    request = RightsRequest.objects.get(pk=request_id_of(done))
    assert request.kind == "rectification"
    assert request.details == {"identifiers": [], "profile": ["name"]}
    assert drain(request.pk).status == "completed"
    # A new number is not part of it: it counts only once confirmed by the code sent to it (test_address_change.py).
    new_number = post_form(client, "/portal/rights/rectification", {"phone": "0171 5550202", "profile:name": "Anna B."})
    assert new_number["Location"] == "/portal/rights/rectification/code"


def test_restricting_processing_with_a_ground() -> None:
    subject_id = customer("anna@example.de")
    client = sign_in("anna@example.de")
    assert post_form(client, "/portal/rights/restriction", {}).status_code == 400
    request_id = request_id_of(post_form(client, "/portal/rights/restriction", {"ground": "18(1)(a)"}))
    assert RightsRequest.objects.get(pk=request_id).details == {"ground": "18(1)(a)"}
    drain(request_id)
    assert Subject.objects.get(pk=subject_id).restricted_at is not None
    assert "eingeschränkt" in client.get("/portal/preferences").content.decode()


def test_objecting_through_a_rights_request() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    request_id = request_id_of(post_form(client, "/portal/rights/objection", {"scope": "purpose:offers"}))
    request = RightsRequest.objects.get(pk=request_id)
    assert (request.kind, request.details) == ("objection", {"purpose": "offers"})
    assert "Widersprochen" in client.get("/portal/preferences").content.decode()


def test_a_person_nobody_knows_has_nothing_to_request() -> None:
    client = sign_in("new@example.de")
    assert "keine personenbezogenen Daten" in client.get("/portal/rights").content.decode()
    assert open_copy(client).status_code == 409
    assert client.get("/portal/rights/erasure").status_code == 409
    assert RightsRequest.objects.count() == 0


def test_known_only_by_consent_is_known_enough() -> None:
    known_person("anna@example.de")
    client = sign_in("anna@example.de")
    assert request_id_of(open_copy(client))
