"""API clients in the admin: created through client_create (the key shown once), revoked through client_revoke;
the key digest is on no page; Support has no access."""

from __future__ import annotations

import re

from django.test import Client

from consent.models import ApiClient, AuditEntry
from subjects.crypto import api_key_digest
from tests.admin.conftest import speaking
from tests.api import Api


def create(dpo: Client, name: str = "crm") -> tuple[ApiClient, str, str]:
    response = dpo.post(
        "/admin/consent/apiclient/add/",
        {
            "name": name,
            "scopes": ["consent:check", "profile:read"],
            "purpose_scope": "only",
            "purposes": ["newsletter"],
        },
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    page = response.content.decode()
    match = re.search(r'<code id="api-key"[^>]*>([^<]+)</code>', page)
    assert match is not None, page[:3000]
    return ApiClient.objects.get(name=name), match.group(1), page


def test_dpo_creates_a_client_and_sees_its_key_once(dpo: Client) -> None:
    client, key, page = create(dpo)

    assert key.startswith("ast_")
    assert client.key_digest == api_key_digest(key)
    assert client.scopes == ["consent:check", "profile:read"]
    assert client.purposes == ["newsletter"]
    assert "shown this once" in page
    later = dpo.get(f"/admin/consent/apiclient/{client.pk}/change/").content.decode()
    assert key not in later
    assert AuditEntry.objects.filter(action="add", object_type="consent.apiclient", object_id=str(client.pk)).exists()


def test_the_form_explains_every_scope_and_names_purposes_in_the_staff_members_language(
    dpo: Client, dpo_en: Client
) -> None:
    english = dpo_en.get("/admin/consent/apiclient/add/").content.decode()
    german = speaking(dpo, "de").get("/admin/consent/apiclient/add/").content.decode()

    assert "consent:check: Ask whether a person may be contacted" in english
    assert "requests:approve: Approve erasures and lift restrictions" in english
    assert all(f"{scope}: " in english for scope in ApiClient.Scope.values)
    assert "Every purpose, including purposes added to the catalogue later" in english
    assert "Newsletter (newsletter)" in english
    assert "consent:check: Fragen, ob eine Person" in german
    assert "Jeden Zweck, auch später in den Katalog aufgenommene" in german
    assert "Scopes and purposes are fixed once the client exists" in english


def test_ticking_no_purpose_is_not_every_purpose(dpo_en: Client) -> None:
    # given a form with scopes and no purpose ticked, and neither choice made
    response = dpo_en.post("/admin/consent/apiclient/add/", {"name": "crm", "scopes": ["consent:check"]})

    # then nothing is created and the form asks for the choice
    assert response.status_code == 200
    assert "Choose whether the client may act for every purpose or only for some." in response.content.decode()
    assert not ApiClient.objects.filter(name="crm").exists()


def test_only_these_purposes_with_none_ticked_is_a_form_error(dpo_en: Client) -> None:
    response = dpo_en.post(
        "/admin/consent/apiclient/add/", {"name": "crm", "scopes": ["consent:check"], "purpose_scope": "only"}
    )

    assert response.status_code == 200
    assert "Tick at least one purpose, or choose" in response.content.decode()
    assert not ApiClient.objects.filter(name="crm").exists()


def test_every_purpose_with_purposes_ticked_is_a_form_error(dpo_en: Client) -> None:
    body = {"name": "crm", "scopes": ["consent:check"], "purpose_scope": "every", "purposes": ["newsletter"]}

    response = dpo_en.post("/admin/consent/apiclient/add/", body)

    assert "Every purpose is chosen: untick these purposes" in response.content.decode()
    assert not ApiClient.objects.filter(name="crm").exists()


def test_every_purpose_chosen_explicitly_makes_an_unrestricted_client(dpo_en: Client) -> None:
    body = {"name": "crm", "scopes": ["consent:check"], "purpose_scope": "every"}

    response = dpo_en.post("/admin/consent/apiclient/add/", body)

    assert response.status_code == 200
    assert 'id="api-key"' in response.content.decode()
    assert ApiClient.objects.get(name="crm").purposes == []


def test_the_key_works_for_the_api(dpo: Client) -> None:
    _client, key, _page = create(dpo)

    response = Api(key).post(
        "/api/v1/consents/check", {"subject": {"email": "x@example.org"}, "purpose": "newsletter", "channel": "email"}
    )

    assert response.status_code == 200


def test_no_admin_page_shows_a_key_digest(dpo: Client) -> None:
    client, _key, _page = create(dpo)

    for url in ("/admin/consent/apiclient/", f"/admin/consent/apiclient/{client.pk}/change/"):
        assert client.key_digest not in dpo.get(url).content.decode(), url
    assert dpo.get(f"/admin/consent/apiclient/?q={client.key_digest}").context["cl"].result_count == 0
    assert "digest" not in dpo.get(f"/admin/consent/apiclient/{client.pk}/change/").content.decode().lower()


def test_dpo_revokes_a_client_and_its_key_stops_working_at_once(dpo: Client) -> None:
    client, key, _page = create(dpo)
    api = Api(key)
    check = {"subject": {"email": "x@example.org"}, "purpose": "newsletter", "channel": "email"}
    assert api.post("/api/v1/consents/check", check).status_code == 200

    page = dpo.get(f"/admin/consent/apiclient/{client.pk}/change/").content.decode()
    response = dpo.post(f"/admin/consent/apiclient/{client.pk}/revoke/")

    assert "Diesen Client widerrufen" in page  # the admin's default language is German
    assert response.status_code == 302
    assert ApiClient.objects.get(pk=client.pk).revoked_at is not None
    assert api.post("/api/v1/consents/check", check).status_code == 401
    assert AuditEntry.objects.filter(action="action", detail="revoke", object_id=str(client.pk)).exists()


def test_dpo_revokes_clients_with_the_list_action(dpo: Client) -> None:
    one, _k1, _p1 = create(dpo, "one")
    two, _k2, _p2 = create(dpo, "two")

    response = dpo.post(
        "/admin/consent/apiclient/", {"action": "revoke_selected", "_selected_action": [one.pk, two.pk]}
    )

    assert response.status_code == 302
    assert ApiClient.objects.filter(revoked_at__isnull=False).count() == 2


def test_support_cannot_see_create_or_revoke_api_clients(support: Client, api: Api) -> None:
    client = ApiClient.objects.get()

    assert support.get("/admin/consent/apiclient/").status_code == 403
    assert support.get(f"/admin/consent/apiclient/{client.pk}/change/").status_code == 403
    body = {"name": "x", "scopes": ["consent:check"], "purpose_scope": "every"}
    assert support.post("/admin/consent/apiclient/add/", body).status_code == 403
    assert support.post(f"/admin/consent/apiclient/{client.pk}/revoke/").status_code == 403
    assert ApiClient.objects.get(pk=client.pk).revoked_at is None
    assert ApiClient.objects.count() == 1
