"""Admin searches for a person: audited like a view (what kind of term, never the term), and the term never in a
URL, so neither the browser's history nor any access log (gunicorn's, a proxy's) holds the searched address."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from freezegun import freeze_time

from consent.models import AuditEntry
from tests.admin.conftest import admin_search

SUBJECTS = "/admin/subjects/subject/"


def test_a_subject_search_is_a_post_and_the_list_is_shown_under_a_token(dpo: Client, anna: str) -> None:
    response = dpo.post(SUBJECTS, {"_assent_search": "1", "q": "anna.becker@example.org"})

    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{SUBJECTS}?qt=")
    assert "anna" not in location
    assert "example" not in location
    listing = dpo.get(location)
    assert [str(s.pk) for s in listing.context["cl"].result_list] == [anna]
    assert "anna.becker@example.org" in listing.content.decode()  # in the search box: the page, not the address


def test_each_search_is_audited_by_kind_without_the_term(dpo: Client, anna: str) -> None:
    admin_search(dpo, SUBJECTS, "anna.becker@example.org")
    admin_search(dpo, SUBJECTS, "+49 171 1234567")
    admin_search(dpo, SUBJECTS, anna)
    admin_search(dpo, "/admin/consent/consentevent/", anna)

    entries = AuditEntry.objects.filter(action="view", detail__startswith="search by").order_by("pk")
    assert [(e.object_type, e.detail) for e in entries] == [
        ("subjects.subject", "search by e-mail"),
        ("subjects.subject", "search by phone"),
        ("subjects.subject", "search by subject id"),
        ("consent.consentevent", "search by subject id"),
    ]
    assert {e.username for e in entries} == {dpo.user.get_username()}  # type: ignore[attr-defined]
    for entry in entries:
        assert "anna" not in entry.detail
        assert "1234567" not in entry.detail
        assert anna not in entry.detail
        assert entry.object_id == ""


def test_a_search_term_in_the_url_is_refused_and_not_searched(dpo: Client, anna: str) -> None:
    response = dpo.get(SUBJECTS, {"q": "anna.becker@example.org", "status": "active"})

    assert response.status_code == 302
    assert "anna" not in response["Location"]
    assert "q=" not in response["Location"].replace("qt=", "")
    assert not AuditEntry.objects.filter(detail__startswith="search by").exists()
    for changelist in ("/admin/consent/consentevent/", "/admin/subjects/rightsrequest/"):
        assert dpo.get(changelist, {"q": anna}).status_code == 302, changelist


def test_filters_sorting_and_pages_keep_the_search_by_its_token(dpo: Client, anna: str) -> None:
    listing = admin_search(dpo, SUBJECTS, "anna.becker@example.org")
    token = listing.wsgi_request.GET["qt"]
    page = listing.content.decode()

    assert f"qt={token}" in page  # the filter and sort links carry the token
    assert "anna.becker%40example.org" not in page
    assert "q=anna" not in page
    filtered = dpo.get(SUBJECTS, {"qt": token, "status__exact": "active"})
    assert filtered.status_code == 200
    assert [str(s.pk) for s in filtered.context["cl"].result_list] == [anna]


def test_a_token_from_another_session_finds_nothing(dpo: Client, support: Client, anna: str) -> None:
    token = admin_search(dpo, SUBJECTS, "anna.becker@example.org").wsgi_request.GET["qt"]

    response = support.get(SUBJECTS, {"qt": token})

    assert response.status_code == 302
    assert response["Location"] == SUBJECTS


def test_the_index_search_box_posts_too(dpo: Client) -> None:
    page = dpo.get("/admin/").content.decode()
    form = page[page.index('action="/admin/subjects/subject/"') - 40 :][:400]
    assert 'method="post"' in form
    assert "csrfmiddlewaretoken" in form


def test_a_search_is_forgotten_after_an_hour(dpo: Client, anna: str) -> None:
    token = admin_search(dpo, SUBJECTS, "anna.becker@example.org").wsgi_request.GET["qt"]

    with freeze_time(timedelta(hours=1, minutes=1)):
        response = dpo.get(SUBJECTS, {"qt": token})

    assert response.status_code == 302
    assert response["Location"] == SUBJECTS
