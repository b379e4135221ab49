"""A consent state row that cannot be read (a bad restore, a hand-made UPDATE) shows a readable page in the portal
and the admin, never a 500 and never a guess at what the person agreed to."""

from __future__ import annotations

from django.test import Client

from subjects.models import Subject
from tests.admin.conftest import dpo, make_staff, staff_groups  # noqa: F401 (fixtures)
from tests.api import Api
from tests.consent.test_check_undecidable import corrupt_state_of
from tests.factories import customer
from tests.portal.conftest import portal, sign_in  # noqa: F401 (fixture)


def test_the_portal_says_it_cannot_show_settings_it_cannot_read(api: Api, portal: None) -> None:  # noqa: F811
    kim: Subject = customer()
    client = sign_in("kim@example.org")
    assert client.get("/portal/preferences").status_code == 200
    corrupt_state_of(str(kim.pk))

    page = client.get("/portal/preferences?lang=en")

    assert page.status_code == 503
    assert page["Retry-After"] == "60"
    assert "We cannot read your settings at the moment" in page.content.decode()


def test_the_portal_says_so_in_german_too(api: Api, portal: None) -> None:  # noqa: F811
    kim: Subject = customer()
    client = sign_in("kim@example.org")
    corrupt_state_of(str(kim.pk))

    page = client.get("/portal/preferences?lang=de")

    assert page.status_code == 503
    assert "Diese Seite ist gerade nicht verfügbar" in page.content.decode()


def test_the_admin_subject_page_answers_readably_instead_of_a_500(api: Api, dpo: Client) -> None:  # noqa: F811
    kim: Subject = customer()
    corrupt_state_of(str(kim.pk))

    page = dpo.get(f"/admin/subjects/subject/{kim.pk}/change/")

    assert page.status_code in (200, 503), page.status_code
    assert b"Server Error" not in page.content
