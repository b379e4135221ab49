"""API clients in the admin: created through client_create (the key shown once), revoked through client_revoke;
the key digest is on no page; Support has no access."""

from __future__ import annotations

import re

from django.test import Client

from consent.models import ApiClient, AuditEntry
from subjects.crypto import api_key_digest
from tests.api import Api


def create(dpo: Client, name: str = "crm") -> tuple[ApiClient, str, str]:
    response = dpo.post(
        "/admin/consent/apiclient/add/",
        {"name": name, "scopes": ["consent:check", "profile:read"], "purposes": ["newsletter"]},
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

    assert "Revoke this client" in page
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
    assert support.post("/admin/consent/apiclient/add/", {"name": "x", "scopes": ["consent:check"]}).status_code == 403
    assert support.post(f"/admin/consent/apiclient/{client.pk}/revoke/").status_code == 403
    assert ApiClient.objects.get(pk=client.pk).revoked_at is None
    assert ApiClient.objects.count() == 1
